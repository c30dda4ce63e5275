"""`[dag.params]` and the values a run is given: typed, checked before any run starts."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pit.spec.dag import parse_dag
from pit.spec.params import (
    Param,
    ParamError,
    ParamSpec,
    ParamType,
    param_env,
    parse_assignments,
    resolve_params,
)

BERLIN = ZoneInfo("Europe/Berlin")
# 23:30 UTC on 31 October is already 1 November in Berlin: the templates use the DAG's zone.
LOGICAL = dt.datetime(2026, 10, 31, 23, 30, tzinfo=dt.UTC)

DAG = """
[dag]
name = "etl"

[dag.params]
day = {{ type = "date", default = "{{{{ scheduled_date }}}}" }}
region = {{ type = "enum", choices = ["eu", "us"], default = "eu" }}
limit = {{ type = "int" }}
ratio = {{ type = "float", default = 0.5 }}
full = {{ type = "bool", default = false }}
since = {{ type = "datetime", default = 2026-01-01T00:00:00Z }}
label = {{ type = "string", default = "run of {{{{ scheduled_time }}}}", description = "a tag" }}
{extra}
[[tasks]]
name = "a"
script = "a.sh"
"""


def specs(extra: str = "") -> tuple[ParamSpec, ...]:
    dag, problems = parse_dag(DAG.format(extra=extra), "pit.toml")
    assert problems == []
    assert dag is not None
    return dag.params


def problems(extra: str) -> list[tuple[str, str]]:
    _, found = parse_dag(DAG.format(extra=extra), "pit.toml")
    return [(p.key, p.message) for p in found]


def resolve(given: dict[str, object]) -> dict[str, object]:
    resolved = resolve_params(specs(), given, logical=LOGICAL, zone=BERLIN)
    return {name: param.value for name, param in resolved.items()}


def test_defaults_and_templates_fill_what_is_not_given() -> None:
    assert resolve({"limit": "10"}) == {
        "day": "2026-11-01",
        "region": "eu",
        "limit": 10,
        "ratio": 0.5,
        "full": False,
        "since": "2026-01-01T00:00:00+00:00",
        "label": "run of 2026-11-01T00:30:00+01:00",
    }


def test_text_and_json_values_are_converted_to_their_type() -> None:
    from_text = resolve(
        {"limit": "-3", "ratio": "2", "full": "yes", "day": "2026-02-28", "region": "us"}
    )
    from_json = resolve({"limit": -3, "ratio": 2, "full": True, "day": "2026-02-28"})
    for values in (from_text, from_json):
        assert (values["limit"], values["ratio"], values["full"], values["day"]) == (
            -3,
            2.0,
            True,
            "2026-02-28",
        )
    naive = resolve({"limit": 1, "since": "2026-03-01T06:00:00"})["since"]
    assert naive == "2026-03-01T06:00:00+01:00"  # a datetime without offset: the DAG's zone


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ({}, "param 'limit' is required (an int): give it"),
        ({"limit": 1, "colour": "red"}, "unknown param 'colour' (the DAG takes: day, region,"),
        ({"limit": "ten"}, "param 'limit': 'ten' is not an int"),
        ({"limit": True}, "param 'limit': true is not an int"),
        ({"limit": 10**30}, "is not an int"),
        ({"limit": 1, "ratio": "nan"}, "param 'ratio': 'nan' is not a float"),
        ({"limit": 1, "full": "maybe"}, "param 'full': 'maybe' is not a bool"),
        ({"limit": 1, "day": "2026-02-30"}, "param 'day': '2026-02-30' is not a date"),
        ({"limit": 1, "day": "20260201"}, "is not a date (YYYY-MM-DD)"),
        ({"limit": 1, "region": "mars"}, "param 'region': 'mars' is not one of eu, us"),
        ({"limit": 1, "label": 5}, "param 'label': 5 is not a string"),
        ({"limit": 1, "since": "yesterday"}, "'yesterday' is not a datetime"),
    ],
)
def test_a_value_that_does_not_fit_names_its_param(given: dict[str, object], error: str) -> None:
    with pytest.raises(ParamError) as info:
        resolve(given)
    assert error in str(info.value)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('x = { type = "colour" }', ("dag.params.x.type", "'colour' is not a param type")),
        ('x = { type = "enum" }', ("dag.params.x.choices", "an enum param needs its choices")),
        (
            'x = { type = "int", choices = ["1"] }',
            ("dag.params.x.choices", "only enum params take choices"),
        ),
        ('x = { type = "int", default = "a" }', ("dag.params.x.default", "'a' is not an int")),
        (
            'x = { type = "int", default = "{{ scheduled_date }}" }',
            ("dag.params.x.default", "the default of an int param cannot be a template"),
        ),
        (
            'x = { type = "date", default = "{{ today }}" }',
            ("dag.params.x.default", "unknown template {{ today }}"),
        ),
        ('x = { type = "int", default = [1] }', ("dag.params.x.default", "must be a single")),
        ('"1x" = { type = "int" }', ("dag.params.1x", "'1x' is not a param name")),
        ('LIMIT = { type = "int" }', ("dag.params.LIMIT", "same as 'limit' in PIT_PARAM_LIMIT")),
        ('x = { type = "int", dflt = 1 }', ("dag.params.x.dflt", "unknown key")),
        ('x = "int"', ("dag.params.x", "expected a table, got a string")),
    ],
)
def test_a_bad_param_is_a_problem_with_its_key(extra: str, expected: tuple[str, str]) -> None:
    found = problems(extra)
    assert len(found) == 1
    assert found[0][0] == expected[0]
    assert expected[1] in found[0][1]


def test_tasks_see_text_and_typed_json() -> None:
    env = param_env(
        {"day": Param(ParamType.DATE, "2026-11-01"), "full": Param(ParamType.BOOL, True)}
    )
    assert env["PIT_PARAM_DAY"] == "2026-11-01"
    assert env["PIT_PARAM_FULL"] == "true"
    assert json.loads(env["PIT_PARAMS"]) == {
        "day": {"type": "date", "value": "2026-11-01"},
        "full": {"type": "bool", "value": True},
    }
    assert param_env({}) == {}


def test_assignments_split_at_the_first_equals_sign() -> None:
    assert parse_assignments(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ParamError, match="--param wants name=value, not 'a'"):
        parse_assignments(["a"])


@given(st.integers(min_value=-(10**18) + 1, max_value=10**18 - 1))
def test_an_int_given_as_text_or_json_is_the_same(number: int) -> None:
    spec = (ParamSpec(name="n", type=ParamType.INT),)
    as_text = resolve_params(spec, {"n": str(number)}, logical=LOGICAL, zone=dt.UTC)
    as_json = resolve_params(spec, {"n": number}, logical=LOGICAL, zone=dt.UTC)
    assert as_text == as_json == {"n": Param(ParamType.INT, number)}


def test_a_scheduled_dag_needs_a_default_for_every_param() -> None:
    from pit.spec.validate import validate_dag

    dag, _ = parse_dag(
        DAG.format(extra="").replace('name = "etl"', 'name = "etl"\nschedule = "0 6 * * *"'),
        "pit.toml",
    )
    assert dag is not None
    found = validate_dag(dag, "pit.toml", lambda script: True)
    assert [(p.key, p.message) for p in found] == [
        (
            "dag.params.limit",
            "is required, but the DAG's schedule starts runs without params",
        )
    ]
