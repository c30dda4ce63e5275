"""Typed reads from a raw TOML table that collect problems instead of raising.

The first stage of the two-stage config load: every read names its key, a wrong type or value
becomes a `Problem` with the key path, and `finish()` reports every key nobody read, with a
did-you-mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from pit.spec.durations import parse_duration
from pit.spec.problems import Problem, did_you_mean


@attrs.define
class TableReader:
    file: str
    path: str
    """Key path of this table, e.g. `dag.ftp_watch` or `tasks[2]`; empty at the top level."""
    raw: Mapping[str, Any]
    problems: list[Problem]
    _read: set[str] = attrs.field(factory=set)

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def problem(self, name: str, message: str, fix: str = "") -> None:
        self.problems.append(Problem(file=self.file, key=self.key(name), message=message, fix=fix))

    def has(self, name: str) -> bool:
        return name in self.raw

    def _get(self, name: str, kind: type | tuple[type, ...], kind_name: str) -> Any:
        self._read.add(name)
        if name not in self.raw:
            return None
        value = self.raw[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python; TOML keeps them apart, so do we.
        if isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool)):
            return value
        self.problem(name, f"expected {kind_name}, got {_toml_type(value)}")
        return None

    def string(self, name: str, *, required: bool = False) -> str | None:
        value = self._get(name, str, "a string")
        if value is None and required and name not in self.raw:
            self.problem(name, "is required")
        if isinstance(value, str) and required and not value.strip():
            self.problem(name, "must not be empty")
            return None
        return value  # type: ignore[no-any-return]

    def integer(self, name: str, *, default: int, minimum: int = 0) -> int:
        value = self._get(name, int, "an integer")
        if value is None:
            return default
        if value < minimum:
            self.problem(name, f"must be at least {minimum}, got {value}")
            return default
        return value  # type: ignore[no-any-return]

    def number(self, name: str, *, default: float, minimum: float = 0.0) -> float:
        value = self._get(name, (int, float), "a number")
        if value is None:
            return default
        if value < minimum:
            self.problem(name, f"must be at least {minimum}, got {value}")
            return default
        return float(value)

    def boolean(self, name: str, *, default: bool) -> bool:
        value = self._get(name, bool, "true or false")
        return default if value is None else bool(value)

    def duration(self, name: str) -> float | None:
        text = self._get(name, str, "a duration string such as '30s'")
        if text is None:
            return None
        try:
            seconds = parse_duration(text)
        except ValueError as exc:
            self.problem(name, str(exc))
            return None
        return seconds

    def strings(self, name: str) -> tuple[str, ...] | None:
        value = self._get(name, list, "a list of strings")
        if value is None:
            return None
        if not all(isinstance(item, str) for item in value):
            self.problem(name, "expected a list of strings")
            return None
        return tuple(value)

    def table(self, name: str) -> TableReader | None:
        value = self._get(name, dict, "a table")
        if value is None:
            return None
        return TableReader(self.file, self.key(name), value, self.problems)

    def tables(self, name: str) -> list[TableReader]:
        value = self._get(name, list, f"an array of tables ([[{name}]])")
        if value is None:
            return []
        readers = []
        for index, item in enumerate(value):
            path = f"{self.key(name)}[{index}]"
            if isinstance(item, dict):
                readers.append(TableReader(self.file, path, item, self.problems))
            else:
                self.problems.append(
                    Problem(
                        file=self.file, key=path, message="expected a table", fix=f"use [[{name}]]"
                    )
                )
        return readers

    def unread(self) -> dict[str, Any]:
        """Keys not read so far, for tables that keep extra fields (such as outputs)."""
        return {k: v for k, v in self.raw.items() if k not in self._read}

    def finish(self) -> None:
        """Report every key that no read asked for: a typo must not be dropped silently."""
        for name in self.raw:
            if name not in self._read:
                hint = did_you_mean(name, self._read)
                self.problem(name, "unknown key", hint)


def _toml_type(value: object) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    return names.get(type(value), type(value).__name__)
