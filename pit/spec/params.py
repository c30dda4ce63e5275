"""Typed run parameters: `[dag.params]`, and the values a run is given.

```toml
[dag.params]
day = { type = "date", default = "{{ scheduled_date }}" }
region = { type = "enum", choices = ["eu", "us"], default = "eu" }
limit = { type = "int" }          # no default: every run must give it
```

Types: string, int, float, bool, date (`YYYY-MM-DD`), datetime (ISO 8601; without an offset,
in the DAG's timezone), enum (one of `choices`). A default of a string, date or datetime param
may name the run's logical time: `{{ scheduled_date }}` and `{{ scheduled_time }}` (the cron
fire time, a backfill's fire time, or the time a run was asked for, in the DAG's timezone).

A run's values are resolved once, when it is asked for (`resolve_params`): a value given as text
(`pit run --param k=v`) or as JSON (a webhook's or the API's body), else the default; a param
the DAG does not take, a wrong type or a required param missing is a `ParamError` naming it, and
no run starts. Tasks get them as `PIT_PARAM_<NAME>` (text) and `PIT_PARAMS` (JSON with each
type, which `pit_sdk.get_param` reads back typed). Sans-io.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import re
from collections.abc import Mapping
from typing import Any

import attrs

from pit.errors import PitError
from pit.spec import limits
from pit.spec.problems import shown
from pit.spec.reader import TableReader

MAX_PARAMS = 100
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_TEMPLATE = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
_TEMPLATES = ("scheduled_date", "scheduled_time")
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}

Value = str | int | float | bool
"""A param's value as JSON holds it: a date or datetime as ISO 8601 text."""


class ParamType(enum.StrEnum):
    STRING = "string"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    DATE = "date"
    DATETIME = "datetime"
    ENUM = "enum"


class ParamError(PitError):
    """A run's params do not fit its DAG's `[dag.params]`: the message names the param."""


@attrs.frozen(kw_only=True)
class ParamSpec:
    name: str
    type: ParamType
    default: Value | None = None
    """As written (a string may hold a template); None: required."""
    choices: tuple[str, ...] = ()
    description: str = ""

    @property
    def required(self) -> bool:
        return self.default is None


@attrs.frozen
class Param:
    """One resolved value, with its type (so a task can read it back typed)."""

    type: ParamType
    value: Value


Params = Mapping[str, Param]


def read_params(r: TableReader) -> tuple[ParamSpec, ...]:
    """`[dag.params]`: each key a table with `type`, and `default`, `choices`, `description`."""
    names = list(r.raw)
    if len(names) > MAX_PARAMS:
        r.problem(names[MAX_PARAMS], f"more than {MAX_PARAMS} params", "give fewer params")
        return ()
    specs: list[ParamSpec] = []
    upper: dict[str, str] = {}
    for name in names:
        r.value(name)  # read here, whatever its problems: never an "unknown key" too
        if not _NAME.fullmatch(name):
            r.problem(
                name,
                f"{shown(name)} is not a param name",
                "letters, digits and _, not starting with a digit, at most 64 (it becomes"
                " PIT_PARAM_<NAME>)",
            )
            continue
        if name.upper() in upper:
            r.problem(name, f"same as '{upper[name.upper()]}' in PIT_PARAM_{name.upper()}")
            continue
        upper[name.upper()] = name
        table = r.table(name)
        if table is not None and (spec := _read_param(table, name)) is not None:
            specs.append(spec)
    r.finish()
    return tuple(specs)


def _read_param(r: TableReader, name: str) -> ParamSpec | None:
    written = r.string("type", required=True)
    description = r.string("description") or ""
    choices = r.strings("choices") or ()
    default = r.value("default")  # its type depends on `type`
    r.finish()
    try:
        type_ = ParamType(written) if written is not None else None
    except ValueError:
        r.problem("type", f"{shown(written)} is not a param type", f"use one of {_types()}")
        type_ = None
    if type_ is ParamType.ENUM and not choices:
        r.problem("choices", "an enum param needs its choices", 'choices = ["a", "b"]')
    if choices and type_ is not ParamType.ENUM:
        r.problem("choices", "only enum params take choices", 'set type = "enum"')
    spec = None
    if type_ is not None:
        spec = ParamSpec(name=name, type=type_, choices=choices, description=description)
        if default is not None:
            problem = _default_problem(spec, default)
            if problem:
                r.problem("default", problem)
                spec = None
            else:
                spec = attrs.evolve(spec, default=_as_value(default))
    return spec


def _as_value(default: Any) -> Value:
    if isinstance(default, dt.datetime | dt.date):  # a TOML date or datetime
        return default.isoformat()
    assert isinstance(default, str | int | float | bool)
    return default


def _default_problem(spec: ParamSpec, default: Any) -> str | None:
    """Why `default` cannot be `spec`'s default; None when it can."""
    if isinstance(default, str) and _TEMPLATE.search(default):
        unknown = [m for m in _TEMPLATE.findall(default) if m not in _TEMPLATES]
        if unknown:
            return f"unknown template {{{{ {unknown[0]} }}}} (use {', '.join(_TEMPLATES)})"
        if spec.type not in (ParamType.STRING, ParamType.DATE, ParamType.DATETIME):
            return f"the default of {_a(spec)} param cannot be a template"
        default = _render(default, dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    if isinstance(default, dt.datetime | dt.date | dt.time):
        default = default.isoformat()
    if not isinstance(default, str | int | float | bool):
        return f"the default of {_a(spec)} param must be a single value"
    try:
        convert(spec, default, dt.UTC)
    except ParamError as exc:
        return str(exc).removeprefix(f"param '{spec.name}': ")
    return None


def resolve_params(
    specs: tuple[ParamSpec, ...],
    given: Mapping[str, object],
    *,
    logical: dt.datetime,
    zone: dt.tzinfo,
) -> dict[str, Param]:
    """The run's values: `given` (text or JSON values) over the defaults, each converted to
    its type; `logical` is the run's logical time (for the templates). ParamError names the
    first param that does not fit."""
    known = {spec.name: spec for spec in specs}
    for name in given:
        if name not in known:
            takes = ", ".join(known) or "no params"
            raise ParamError(f"unknown param '{name}' (the DAG takes: {takes})")
    resolved = {}
    for spec in specs:
        value = given.get(spec.name, spec.default)
        if value is None:
            raise ParamError(f"param '{spec.name}' is required ({_a(spec)}): give it")
        if spec.name not in given and isinstance(value, str):
            value = _render(value, logical.astimezone(zone))
        resolved[spec.name] = Param(spec.type, convert(spec, value, zone))
    return resolved


def convert(spec: ParamSpec, value: object, zone: dt.tzinfo) -> Value:
    """`value` (text, or a JSON value) as `spec`'s type, in its JSON form."""
    bad = ParamError(f"param '{spec.name}': {_shown(value)} is not {_a(spec)}")
    match spec.type:
        case ParamType.STRING:
            if not isinstance(value, str):
                raise bad
            if len(value) > limits.MAX_STRING:
                raise ParamError(f"param '{spec.name}' is over {limits.MAX_STRING} characters")
            if "\x00" in value:  # no environment variable can hold it
                raise ParamError(f"param '{spec.name}' holds a NUL character")
            return value
        case ParamType.INT:
            if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d{1,18}\s*", value):
                return int(value)
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**18:
                return value
            raise bad
        case ParamType.FLOAT:
            try:
                result = float(value) if isinstance(value, int | float | str) else math.nan
            except ValueError:
                raise bad from None
            if isinstance(value, bool) or not math.isfinite(result):
                raise bad
            return result
        case ParamType.BOOL:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
                return value.strip().lower() in _TRUE
            raise bad
        case ParamType.DATE:
            if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                raise bad
            try:
                return dt.date.fromisoformat(value).isoformat()
            except ValueError:
                raise bad from None
        case ParamType.DATETIME:
            if not isinstance(value, str):
                raise bad
            try:
                parsed = dt.datetime.fromisoformat(value)
            except ValueError:
                raise bad from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=zone)
            return parsed.isoformat()
        case ParamType.ENUM:
            if not isinstance(value, str) or value not in spec.choices:
                raise ParamError(
                    f"param '{spec.name}': {_shown(value)} is not one of {', '.join(spec.choices)}"
                )
            return value


def _render(text: str, at: dt.datetime) -> str:
    values = {"scheduled_date": at.date().isoformat(), "scheduled_time": at.isoformat()}
    return _TEMPLATE.sub(lambda m: values[m.group(1)], text)


def param_env(params: Params) -> dict[str, str]:
    """What a task's environment says of the run's params."""
    env = {f"PIT_PARAM_{name.upper()}": _text(p.value) for name, p in params.items()}
    if params:
        typed = {name: {"type": p.type.value, "value": p.value} for name, p in params.items()}
        env["PIT_PARAMS"] = json.dumps(typed)
    return env


def param_values(params: Params) -> dict[str, Value]:
    """The values alone, as the run's record keeps them."""
    return {name: param.value for name, param in params.items()}


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """`--param name=value` flags as {name: value}; ParamError for one without `=`."""
    given = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ParamError(f"--param wants name=value, not {_shown(pair)}")
        given[name.strip()] = value
    return given


def _text(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _a(spec: ParamSpec) -> str:
    return {
        ParamType.STRING: "a string",
        ParamType.INT: "an int",
        ParamType.FLOAT: "a float",
        ParamType.BOOL: "a bool (true or false)",
        ParamType.DATE: "a date (YYYY-MM-DD)",
        ParamType.DATETIME: "a datetime (ISO 8601, e.g. 2026-11-01T06:00:00+01:00)",
        ParamType.ENUM: "an enum",
    }[spec.type]


def _shown(value: object) -> str:
    return shown(value) if isinstance(value, str) else json.dumps(value)[:60]


def _types() -> str:
    return ", ".join(t.value for t in ParamType)
