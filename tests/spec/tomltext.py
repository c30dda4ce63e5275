"""Small builders for `pit.toml` text, so each test shows only the keys it is about."""

from __future__ import annotations

import json

from pit.spec.dag import DagSpec, parse_dag
from pit.spec.problems import Problem

FILE = "projects/etl/pit.toml"


def value(item: object) -> str:
    """`item` as a TOML value: strings, integers, floats, booleans and lists of those."""
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, str):
        return json.dumps(item)  # a JSON string is a valid TOML basic string
    if isinstance(item, list):
        return "[" + ", ".join(value(x) for x in item) + "]"
    return repr(item)


def table(header: str, **keys: object) -> str:
    """A `[header]` (or `[[header]]`, if written so) table with one line per key."""
    lines = [header if header.startswith("[") else f"[{header}]"]
    lines += [f"{key} = {value(item)}" for key, item in keys.items()]
    return "\n".join(lines)


def dag(name: str | None = "etl", **keys: object) -> str:
    """The `[dag]` table; `name=None` leaves the name out."""
    return table("dag", **({"name": name} if name is not None else {}), **keys)


def task(name: str, script: str | None = None, **keys: object) -> str:
    """A `[[tasks]]` entry; the script defaults to `tasks/<name>.py`."""
    return table("[[tasks]]", name=name, script=script or f"tasks/{name}.py", **keys)


def pit_toml(*sections: str) -> str:
    return "\n\n".join(sections) + "\n"


def parse(text: str) -> tuple[DagSpec | None, list[Problem]]:
    return parse_dag(text, FILE)


def parse_ok(text: str) -> DagSpec:
    """The spec of a file that must parse without a single problem."""
    spec, problems = parse(text)
    assert problems == []
    assert spec is not None
    return spec


def the_problem(problems: list[Problem], key: str) -> Problem:
    """The one problem reported at `key`; fails listing them all when there is not exactly one."""
    at_key = [p for p in problems if p.key == key]
    assert len(at_key) == 1, f"expected one problem at {key!r}, got: {[str(p) for p in problems]}"
    assert at_key[0].file == FILE
    return at_key[0]
