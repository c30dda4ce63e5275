"""SQL connection secrets must name a database pit supports (`mysql://` does not pass)."""

from __future__ import annotations

import pytest

from pit.connectors import target
from pit.spec.connections import SQL_SCHEMES, connection_problem
from pit.spec.secrets import parse_secrets
from pit.spec.validate import validate_secret_names

from .tomltext import FILE, dag, parse_ok, pit_toml, table, task


def test_the_spec_knows_the_same_schemes_as_the_connectors() -> None:
    # The spec layer cannot import the connectors, so it keeps its own list; this keeps it true.
    assert set(SQL_SCHEMES) == set(target._SCHEMES)


@pytest.mark.parametrize(
    "value",
    [
        "sqlite:///w.db",
        "duckdb:///w.duckdb",
        "postgresql://u@h/db",
        "POSTGRES://u@h/db",
        "sqlserver://u:p@h/db",
        "mssql://u:p@h/db",
        {"driver": "sqlserver", "host": "h"},
        {"type": "postgres"},
    ],
)
def test_supported(value: str | dict[str, str]) -> None:
    assert connection_problem(value) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("mysql://u:secret@h/db", "names an unsupported database (scheme 'mysql')"),
        ("oracle://x", "names an unsupported database (scheme 'oracle')"),
        ({"driver": "mysql", "password": "secret"}, "is a structured secret with driver 'mysql'"),
    ],
)
def test_unsupported(value: str | dict[str, str], message: str) -> None:
    found = connection_problem(value)

    assert found is not None
    assert found[0] == message
    assert "secret" not in found[0].replace("secret with", "")  # never the password


def test_validate_names_the_key_and_the_secret_of_an_unsupported_database() -> None:
    spec = parse_ok(
        pit_toml(
            dag(),
            table("dag.sql", connection="warehouse"),
            task("q", "q.sql"),
            task("r", "r.sql", connection="mine"),
        )
    )
    secrets, _ = parse_secrets(
        '[global]\nwarehouse = "sqlite:///w.db"\nmine = "mysql://u:pw@h/db"\n', "secrets.toml"
    )

    (problem,) = validate_secret_names(spec, FILE, secrets)

    assert problem.key == "tasks[1].connection"
    assert problem.message == "secret 'mine' names an unsupported database (scheme 'mysql')"
    assert "postgresql://" in problem.fix
    assert "pw" not in str(problem)
