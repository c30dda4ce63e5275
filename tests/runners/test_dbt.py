"""The profiles.yml pit writes for dbt tasks (`pit.runners.dbt`): each known adapter's keys from
the connection secret, an unknown adapter's fields as written, and a clear error for what is
missing."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from pit.errors import RunError
from pit.runners.dbt import PROFILES, dbt_env, profile, profiles_folder
from pit.spec.dag import parse_dag
from pit.spec.secrets import parse_secrets

WORKSPACE = Path("/srv/pit")


def dbt_dag(adapter: str, connection: str | None = "db", extra: str = "") -> Any:
    lines = ['[dag]\nname = "marts"\n[dag.dbt]\nversion = "1.11.16"', f'adapter = "{adapter}"']
    if connection:
        lines.append(f'connection = "{connection}"')
    lines.append(extra)
    lines.append('[[tasks]]\nname = "run"\nscript = "run"\nrunner = "dbt"\n')
    spec, problems = parse_dag("\n".join(lines), "projects/marts/pit.toml")
    assert spec is not None, problems
    return spec


def secrets(text: str) -> Any:
    found, problems = parse_secrets(text, "secrets.toml")
    assert not problems, problems
    return found


def output(adapter: str, secret: str, **kw: Any) -> dict[str, Any]:
    made = profile(
        dbt_dag(adapter, **kw), secrets(secret), workspace=WORKSPACE, odbc_driver="ODBC 18"
    )
    assert list(made) == ["marts"]
    assert made["marts"]["target"] == "prod"
    return made["marts"]["outputs"]["prod"]  # type: ignore[no-any-return]


def test_postgres_fields_become_its_profile_with_its_defaults() -> None:
    made = output(
        "dbt-postgres",
        '[global.db]\nhost = "pg"\nuser = "u"\npassword = "p"\ndatabase = "dw"\n'
        'sslmode = "require"\n',
    )
    assert made == {
        "type": "postgres",
        "host": "pg",
        "user": "u",
        "password": "p",
        "dbname": "dw",
        "port": 5432,
        "schema": "public",
        "threads": 4,
        "sslmode": "require",
    }


def test_a_duckdb_path_resolves_against_the_workspace() -> None:
    made = output("dbt-duckdb", '[global.db]\npath = "warehouse.duckdb"\n')
    assert made == {"type": "duckdb", "threads": 1, "path": "/srv/pit/warehouse.duckdb"}
    absolute = output("dbt-duckdb", '[global.db]\ndatabase = "/data/w.duckdb"\n')
    assert absolute["path"] == "/data/w.duckdb"


def test_sqlserver_gets_the_workspaces_odbc_driver() -> None:
    made = output(
        "dbt-sqlserver",
        '[global.db]\nhost = "mssql"\ndatabase = "dw"\nuser = "u"\npassword = "p"\n',
    )
    assert made["server"] == "mssql"
    assert made["driver"] == "ODBC 18"
    assert (made["port"], made["schema"]) == (1433, "dbo")


def test_an_adapter_pit_does_not_know_gets_the_fields_as_written() -> None:
    made = output("dbt-snowflake==1.9.0", '[global.db]\naccount = "acme"\nwarehouse = "wh"\n')
    assert made == {"type": "snowflake", "account": "acme", "warehouse": "wh"}


def test_profile_and_target_come_from_the_dag() -> None:
    extra = 'profile = "analytics"\ntarget = "dev"'
    made = profile(
        dbt_dag("dbt-duckdb", extra=extra),
        secrets('[global.db]\npath = "w.duckdb"\n'),
        workspace=WORKSPACE,
        odbc_driver="x",
    )
    assert made == {
        "analytics": {
            "target": "dev",
            "outputs": {"dev": {"type": "duckdb", "threads": 1, "path": "/srv/pit/w.duckdb"}},
        }
    }


@pytest.mark.parametrize(
    ("secret", "said"),
    [
        (
            '[global.db]\nhost = "pg"\nuser = "u"\npassword = "p"\n',
            "secret 'db' has no field 'dbname' that dbt-postgres needs (or 'database')",
        ),
        ('[global]\ndb = "postgresql://u:p@pg/dw"\n', "secret 'db' is a plain value"),
        ('[global]\nother = "x"\n', "dbt needs secret 'db' not found"),
    ],
)
def test_what_the_secret_lacks_is_said_before_dbt_starts(secret: str, said: str) -> None:
    with pytest.raises(RunError, match=said.replace("(", r"\(").replace(")", r"\)")):
        output("dbt-postgres", secret)


def test_no_connection_or_no_secrets_file_is_said() -> None:
    with pytest.raises(RunError, match="sets no connection"):
        output("dbt-duckdb", "", connection=None)
    with pytest.raises(RunError, match="no secrets file"):
        profile(dbt_dag("dbt-duckdb"), None, workspace=WORKSPACE, odbc_driver="x")


def test_the_profiles_folder_is_private_and_gone_after() -> None:
    with profiles_folder({"p": {"target": "prod", "outputs": {}}}) as folder:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        written = folder / PROFILES
        assert stat.S_IMODE(written.stat().st_mode) == 0o600
        assert json.loads(written.read_text()) == {"p": {"target": "prod", "outputs": {}}}
        assert dbt_env(folder)["DBT_PROFILES_DIR"] == str(folder)
    assert not folder.exists()
    assert dbt_env(None) == {
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_VERSION_CHECK": "false",
    }


def test_numbers_and_booleans_written_as_text_reach_dbt_typed() -> None:
    made = output(
        "dbt-postgres",
        '[global.db]\nhost = "pg"\nuser = "u"\npassword = "p"\ndbname = "dw"\n'
        'port = "6543"\nthreads = "8"\nsslmode = "require"\nkeepalive = "TRUE"\n',
    )
    assert (made["port"], made["threads"], made["keepalive"]) == (6543, 8, True)
    assert made["password"] == "p"
