"""Files written for the original Pit load: its spellings, its later keys, its lax dbt table."""

from __future__ import annotations

import pytest

from pit.spec.problems import Severity
from pit.spec.tables import RequireSpec
from pit.spec.workspace import CONFIG_FILE, parse_workspace_config

from .tomltext import dag, parse, parse_ok, pit_toml, task


def test_overlap_wait_is_the_original_name_for_queue() -> None:
    assert parse_ok(pit_toml(dag(overlap="wait"), task("a"))).overlap == "queue"


def test_requires_as_a_table_of_dags_with_max_age_is_accepted_with_a_warning() -> None:
    text = pit_toml(
        '[dag]\nname = "etl"\nrequires = { other_dag = { max_age = "24h" }, b = {} }',
        task("a"),
    )

    spec, problems = parse(text)

    assert spec is not None
    assert spec.requires == (
        RequireSpec(dag="other_dag", max_age=24 * 3600.0),
        RequireSpec(dag="b", max_age=None),
    )
    assert problems == []


def test_requires_as_the_original_list_of_names() -> None:
    spec, problems = parse(pit_toml(dag(requires=["other_dag"]), task("a")))

    assert spec is not None
    assert spec.requires == (RequireSpec(dag="other_dag"),)
    assert problems == []


def test_requires_as_a_list_of_tables() -> None:
    text = pit_toml(
        '[dag]\nname = "etl"\nrequires = [{ dag = "ingest", max_age = "6h" }, { dag = "b" }]',
        task("a"),
    )
    spec, problems = parse(text)

    assert problems == []
    assert spec is not None
    assert spec.requires == (
        RequireSpec(dag="ingest", max_age=6 * 3600.0),
        RequireSpec(dag="b", max_age=None),
    )


@pytest.mark.parametrize(
    ("requires", "key", "message"),
    [
        ('{ other = { max_age = "soon" } }', "dag.requires.other.max_age", "is not a duration"),
        ('{ other = { max_age = "400d" } }', "dag.requires.other.max_age", "is too long"),
        ('{ other = { max_agee = "1h" } }', "dag.requires.other.max_agee", "unknown key"),
        ('{ other = "24h" }', "dag.requires.other", "expected a table, got a string"),
        ('{ "a/b" = {} }', "dag.requires.a/b", "'a/b' is not a DAG name"),
        ("5", "dag.requires", "expected a table, got an integer"),
    ],
)
def test_requires_is_type_checked(requires: str, key: str, message: str) -> None:
    _, problems = parse(pit_toml(f'[dag]\nname = "etl"\nrequires = {requires}', task("a")))

    problem = [p for p in problems if p.is_error and p.key == key]
    assert len(problem) == 1, [str(p) for p in problems]
    assert message in problem[0].message


LATER_KEYS = {
    "metadata_db": "pit.db",
    "api_token": "t0ken",
    "age_identity": "~/.age/key.txt",
    "dbt_driver": "ODBC Driver 18 for SQL Server",
    "repo_cache_dir": "cache",
    "secrets_recipients": "recipients.txt",
}


def test_the_original_later_pit_config_keys_load_and_are_used() -> None:
    text = "".join(f'{key} = "{value}"\n' for key, value in LATER_KEYS.items())

    config, problems = parse_workspace_config(text)

    assert [p for p in problems if p.is_error] == []
    # the run store, the API's token (the name of the secret holding it), the git clones'
    # folder, dbt-sqlserver's ODBC driver, the age identity and recipients: all used now
    assert problems == []
    assert config.metadata_db == "pit.db"
    assert config.api_token == "t0ken"
    assert (config.repo_cache_dir, config.dbt_driver) == ("cache", "ODBC Driver 18 for SQL Server")


def test_the_later_keys_are_type_checked() -> None:
    _, problems = parse_workspace_config("metadata_db = 5\n")

    assert [(p.key, p.message, p.is_error) for p in problems] == [
        ("metadata_db", "expected a string, got an integer", True),
    ]


def test_an_unknown_config_key_is_an_error_when_strict_and_a_warning_otherwise() -> None:
    _, strict = parse_workspace_config("runs_dri = 'x'\n", strict=True)
    _, lenient = parse_workspace_config("runs_dri = 'x'\n", strict=False)

    assert [(p.file, p.key, p.severity) for p in strict] == [
        (CONFIG_FILE, "runs_dri", Severity.ERROR)
    ]
    assert [(p.key, p.severity, p.fix) for p in lenient] == [
        ("runs_dri", Severity.WARNING, "did you mean 'runs_dir'?")
    ]


def test_run_and_serve_are_not_told_about_the_later_keys_at_every_start() -> None:
    text = "".join(f'{key} = "{value}"\n' for key, value in LATER_KEYS.items())

    config, problems = parse_workspace_config(text, strict=False)

    assert problems == []
    assert config.metadata_db == "pit.db"
