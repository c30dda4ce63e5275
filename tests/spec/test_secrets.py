"""`parse_secrets` and resolution: the project's section first, then `[global]`."""

from __future__ import annotations

import json
import textwrap

import pytest

from pit.errors import PitError
from pit.spec.secrets import SecretNotFound, Secrets, parse_secrets

SECRETS_FILE = "/etc/pit/secrets.toml"

README_SECRETS = textwrap.dedent(
    """\
    [global]
    smtp_password = "plain_secret"
    deploy_webhook_token = "supersecret123"

    [global.warehouse_db]
    host = "sql-server.example.com"
    port = "1433"
    user = "admin"
    password = "secret"

    [claims_pipeline]
    claims_db = "sqlserver://user:pass@host/db"
    smtp_password = "claims_own_password"

    [claims_pipeline.ftp_creds]
    host = "ftp.example.com"
    user = "ftpuser"
    password = "secret123"
    """
)


@pytest.fixture
def secrets() -> Secrets:
    parsed, problems = parse_secrets(README_SECRETS, SECRETS_FILE)
    assert problems == []
    return parsed


def test_plain_secret_from_global(secrets: Secrets) -> None:
    assert secrets.resolve("any_project", "deploy_webhook_token") == "supersecret123"


def test_project_section_comes_before_global(secrets: Secrets) -> None:
    assert secrets.resolve("claims_pipeline", "smtp_password") == "claims_own_password"
    assert secrets.resolve("other", "smtp_password") == "plain_secret"


def test_project_secret_is_not_visible_to_other_projects(secrets: Secrets) -> None:
    assert secrets.resolve("claims_pipeline", "claims_db") == "sqlserver://user:pass@host/db"

    with pytest.raises(SecretNotFound, match=r"secret 'claims_db' not found in sections \[other\]"):
        secrets.resolve("other", "claims_db")


def test_structured_secret_resolves_to_json(secrets: Secrets) -> None:
    assert json.loads(secrets.resolve("any", "warehouse_db")) == {
        "host": "sql-server.example.com",
        "port": "1433",
        "user": "admin",
        "password": "secret",
    }


def test_resolve_field(secrets: Secrets) -> None:
    assert secrets.resolve_field("claims_pipeline", "ftp_creds", "host") == "ftp.example.com"
    assert secrets.resolve_field("x", "warehouse_db", "port") == "1433"


def test_resolve_field_of_a_missing_field_names_the_fields(secrets: Secrets) -> None:
    with pytest.raises(SecretNotFound) as info:
        secrets.resolve_field("x", "warehouse_db", "database")

    assert str(info.value) == (
        "secret 'warehouse_db' has no field 'database' (it has: host, password, port, user)"
    )


def test_resolve_field_of_a_plain_secret(secrets: Secrets) -> None:
    with pytest.raises(SecretNotFound, match="is a plain value and has no field 'host'"):
        secrets.resolve_field("x", "smtp_password", "host")


def test_resolve_field_of_a_missing_secret(secrets: Secrets) -> None:
    with pytest.raises(
        SecretNotFound, match=r"secret 'nope' not found in sections \[x\] or \[global\]"
    ):
        secrets.resolve_field("x", "nope", "host")


def test_secret_not_found_is_a_pit_error() -> None:
    assert issubclass(SecretNotFound, PitError)


def test_numbers_and_booleans_become_strings() -> None:
    secrets, problems = parse_secrets(
        "[global]\nport = 1433\nratio = 0.5\nflag = true\n[global.db]\nport = 5432\ntls = false\n",
        SECRETS_FILE,
    )

    assert problems == []
    assert secrets.resolve("p", "port") == "1433"
    assert secrets.resolve("p", "ratio") == "0.5"
    assert secrets.resolve("p", "flag") == "true"
    assert secrets.resolve_field("p", "db", "port") == "5432"
    assert secrets.resolve_field("p", "db", "tls") == "false"


def test_empty_file_has_no_secrets() -> None:
    secrets, problems = parse_secrets("", SECRETS_FILE)

    assert problems == []
    with pytest.raises(SecretNotFound):
        secrets.resolve("p", "anything")


def test_top_level_value_outside_a_section() -> None:
    secrets, problems = parse_secrets('token = "x"\n[global]\na = "b"\n', SECRETS_FILE)

    (problem,) = problems
    assert (problem.file, problem.key) == (SECRETS_FILE, "token")
    assert problem.message == "expected a section table"
    assert "[global]" in problem.fix
    assert secrets.resolve("p", "a") == "b"


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ("hosts = ['a', 'b']", "global.hosts"),
        ("when = 2024-01-01", "global.when"),
        ("db = { host = 'h', ports = [1, 2] }", "global.db"),
        ("db = { inner = { host = 'h' } }", "global.db"),
    ],
)
def test_values_that_are_not_secrets(entry: str, key: str) -> None:
    secrets, problems = parse_secrets(f"[global]\n{entry}\nok = 'fine'\n", SECRETS_FILE)

    (problem,) = problems
    assert problem.key == key
    assert problem.message == "a secret is a string or a table of strings"
    assert secrets.resolve("p", "ok") == "fine"


def test_malformed_toml() -> None:
    secrets, problems = parse_secrets('[global]\ntoken = "unterminated\n', SECRETS_FILE)

    (problem,) = problems
    assert "not valid TOML" in problem.message
    assert "line 2" in problem.message
    assert secrets == Secrets()
