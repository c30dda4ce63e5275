"""Typed reads from a raw TOML table that collect problems instead of raising.

The first stage of the two-stage config load: every read names its key, a wrong type or value
becomes a `Problem` with the key path, and `finish()` reports every key nobody read, with a
did-you-mean. Every read is bounded (`pit.spec.limits`): no string holds a NUL, no number is
NaN, infinite or out of its range, so nothing downstream can crash or hang on a value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from pit.spec import limits
from pit.spec.durations import parse_duration
from pit.spec.problems import Problem, Severity, did_you_mean, shown


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

    def warn(self, name: str, message: str, fix: str = "") -> None:
        self.problems.append(
            Problem(
                file=self.file,
                key=self.key(name),
                message=message,
                fix=fix,
                severity=Severity.WARNING,
            )
        )

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

    def string(
        self, name: str, *, required: bool = False, max_length: int = limits.MAX_STRING
    ) -> str | None:
        value = self._get(name, str, "a string")
        if value is None and required and name not in self.raw:
            self.problem(name, "is required")
        if not isinstance(value, str):
            return None
        if required and not value.strip():
            self.problem(name, "must not be empty")
            return None
        if reason := _string_problem(value, max_length):
            self.problem(name, reason[0], reason[1])
            return None
        return value

    def path_string(self, name: str, *, required: bool = False) -> str | None:
        """A file or folder path: at most `MAX_PATH` characters."""
        return self.string(name, required=required, max_length=limits.MAX_PATH)

    def name(self, name: str) -> str | None:
        """A required DAG or task name: it becomes a file name, so `limits.NAME_RULE` holds."""
        value = self.string(name, required=True)
        if value is not None and (reason := limits.name_problem(value)):
            self.problem(name, f"{shown(value)} is not a valid name: {reason}", limits.NAME_RULE)
            return None
        return value

    def integer(
        self, name: str, *, default: int, minimum: int = 0, maximum: int | None = None
    ) -> int:
        value = self._get(name, int, "an integer")
        if value is None:
            return default
        if value < minimum or (maximum is not None and value > maximum):
            self.problem(name, _out_of_range(value, minimum, maximum), _use(minimum, maximum))
            return default
        return value  # type: ignore[no-any-return]

    def number(
        self, name: str, *, default: float, minimum: float = 0.0, maximum: float | None = None
    ) -> float:
        value = self._get(name, (int, float), "a number")
        if value is None:
            return default
        if isinstance(value, float) and not math.isfinite(value):
            self.problem(name, f"must be a finite number, got {value}", _use(minimum, maximum))
            return default
        if value < minimum or (maximum is not None and value > maximum):
            self.problem(name, _out_of_range(value, minimum, maximum), _use(minimum, maximum))
            return default
        return float(value)

    def boolean(self, name: str, *, default: bool) -> bool:
        value = self._get(name, bool, "true or false")
        return default if value is None else bool(value)

    def duration(
        self,
        name: str,
        *,
        positive: bool = False,
        maximum: float = limits.MAX_DURATION,
        maximum_text: str = limits.MAX_DURATION_TEXT,
    ) -> float | None:
        """Seconds; at most `maximum`, and above zero when `positive` (a zero timeout or poll
        interval cannot work)."""
        text = self._get(name, str, "a duration string such as '30s'")
        if text is None:
            return None
        try:
            seconds = parse_duration(text)
        except ValueError:
            self.problem(
                name,
                f"{shown(text)} is not a duration; write it like '30s', '15m', '1h30m' or '500ms'",
            )
            return None
        if not seconds <= maximum:  # also catches inf and nan from 400-digit numbers
            self.problem(name, f"{shown(text)} is too long", f"the most is {maximum_text}")
            return None
        if positive and seconds <= 0:
            self.problem(
                name, f"{shown(text)} must be longer than zero", "use a duration such as '30s'"
            )
            return None
        return seconds

    def strings(self, name: str) -> tuple[str, ...] | None:
        value = self._get(name, list, "a list of strings")
        if value is None:
            return None
        if not all(isinstance(item, str) for item in value):
            self.problem(name, "expected a list of strings")
            return None
        for item in value:
            if reason := _string_problem(item, limits.MAX_STRING):
                self.problem(name, reason[0], reason[1])
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

    def value(self, name: str) -> Any:
        """The value as written, of any type (None when absent), for a key whose type depends
        on another key: its caller checks it."""
        self._read.add(name)
        return self.raw.get(name)

    def unread(self) -> dict[str, Any]:
        """Keys not read so far, for tables that keep extra fields (such as outputs)."""
        return {k: v for k, v in self.raw.items() if k not in self._read}

    def finish(self, *, severity: Severity = Severity.ERROR) -> None:
        """Report every key that no read asked for: a typo must not be dropped silently."""
        for name in self.raw:
            if name not in self._read:
                self.problems.append(
                    Problem(
                        file=self.file,
                        key=self.key(name),
                        message="unknown key",
                        fix=did_you_mean(name, self._read),
                        severity=severity,
                    )
                )


def _string_problem(value: str, max_length: int) -> tuple[str, str] | None:
    if "\x00" in value:
        return "contains a NUL character", "remove the \\u0000"
    if len(value) > max_length:
        return f"is {len(value)} characters long", f"the most is {max_length}"
    return None


def _use(minimum: float, maximum: float | None) -> str:
    if maximum is None:
        return f"use {minimum:g} or more"
    return f"use a value from {minimum:g} to {maximum:g}"


def _out_of_range(value: float, minimum: float, maximum: float | None) -> str:
    text = shown(value, limit=20).strip("'")
    if maximum is None:
        return f"must be at least {minimum:g}, got {text}"
    return f"must be from {minimum:g} to {maximum:g}, got {text}"


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
