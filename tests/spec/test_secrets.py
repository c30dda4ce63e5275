"""`parse_secrets` and resolution: the project's section first, then `[global]`."""

from __future__ import annotations

import json
import textwrap

import pytest

from pit.errors import PitError
from pit.spec.secrets import SecretNotFound, Secrets, field_of, parse_secrets

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


def resolve_field(secrets: Secrets, project: str, name: str, field: str) -> str:
    """A field of a structured secret, as the broker's get_secret_field finds it."""
    return field_of(name, secrets.find(project, name), field)


def test_resolve_field(secrets: Secrets) -> None:
    assert resolve_field(secrets, "claims_pipeline", "ftp_creds", "host") == "ftp.example.com"
    assert resolve_field(secrets, "x", "warehouse_db", "port") == "1433"


def test_resolve_field_of_a_missing_field_names_the_fields(secrets: Secrets) -> None:
    with pytest.raises(SecretNotFound) as info:
        resolve_field(secrets, "x", "warehouse_db", "database")

    assert str(info.value) == (
        "secret 'warehouse_db' has no field 'database' (it has: host, password, port, user)"
    )


def test_resolve_field_of_a_plain_secret(secrets: Secrets) -> None:
    with pytest.raises(SecretNotFound, match="is a plain value and has no field 'host'"):
        resolve_field(secrets, "x", "smtp_password", "host")


def test_resolve_field_of_a_missing_secret(secrets: Secrets) -> None:
    with pytest.raises(
        SecretNotFound, match=r"secret 'nope' not found in sections \[x\] or \[global\]"
    ):
        resolve_field(secrets, "x", "nope", "host")


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
    assert resolve_field(secrets, "p", "db", "port") == "5432"
    assert resolve_field(secrets, "p", "db", "tls") == "false"


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


# --- what is masked: the sensitive part only --------------------------------------------------


def values_of(text: str) -> set[str]:
    secrets, problems = parse_secrets(textwrap.dedent(text), SECRETS_FILE)
    assert problems == []
    return secrets.values()


def test_plain_secrets_and_credential_fields_are_masked_not_host_port_or_schema(
    secrets: Secrets,
) -> None:
    values = secrets.values()
    assert {"plain_secret", "supersecret123", "secret", "secret123"} <= values
    assert {"sql-server.example.com", "1433", "admin", "ftp.example.com", "ftpuser"}.isdisjoint(
        values
    )


@pytest.mark.parametrize(
    "field",
    [
        "password",
        "PASSWORD",
        "db_password",
        "passwd",
        "pwd",
        "token",
        "api_key",
        "private_key",
        "client_secret",
        "credentials",
        "AccessKeyId",
        "auth",
    ],
)
def test_credential_fields_are_found_by_name(field: str) -> None:
    values = values_of(f'[global.x]\nhost = "h.example.com"\n{field} = "v4lue-1"\n')
    assert values == {"v4lue-1"}


def test_the_password_of_a_url_in_any_secret_is_masked() -> None:
    values = values_of(
        """
        [global]
        pg = "postgresql://etl:pg%2Fpa55@db.example.com:5432/warehouse"
        [global.x]
        url = "sqlserver://sa:ms-pa55@sql.example.com/dw"
        host = "sql.example.com"
        """
    )
    assert {"pg%2Fpa55", "pg/pa55", "ms-pa55"} <= values
    assert "postgresql://etl:pg%2Fpa55@db.example.com:5432/warehouse" in values  # plain: whole
    assert "sqlserver://sa:ms-pa55@sql.example.com/dw" not in values  # a field named url
    assert "sql.example.com" not in values


def test_the_password_of_an_odbc_string_is_masked() -> None:
    values = values_of(
        """
        [global.x]
        odbc = "Driver={ODBC Driver 18};Server=db;UID=sa;PWD={a;b}}c};Encrypt=yes"
        other = "Server=db;Password=0dbc-pa55"
        """
    )
    assert {"{a;b}}c}", "a;b}c", "0dbc-pa55"} <= values
    assert values.isdisjoint({"db", "sa", "yes"})


def test_a_secret_marks_more_fields_sensitive() -> None:
    secrets, problems = parse_secrets(
        '[global.x]\nhost = "hidden.example.com"\nport = "5432"\nsensitive = ["host"]\n',
        SECRETS_FILE,
    )
    assert problems == []
    assert secrets.values() == {"hidden.example.com"}
    assert json.loads(secrets.resolve("p", "x")) == {"host": "hidden.example.com", "port": "5432"}


def test_a_string_field_named_sensitive_is_an_ordinary_field() -> None:
    secrets, problems = parse_secrets('[global.x]\nsensitive = "yes"\n', SECRETS_FILE)
    assert problems == []
    assert resolve_field(secrets, "p", "x", "sensitive") == "yes"
    assert secrets.values() == set()


@pytest.mark.parametrize(
    ("listed", "message"),
    [('["hots"]', "'hots', not a field"), ("[1]", "a list of field names")],
)
def test_a_sensitive_list_names_fields_of_its_secret(listed: str, message: str) -> None:
    _, problems = parse_secrets(f'[global.x]\nhost = "h"\nsensitive = {listed}\n', SECRETS_FILE)
    (problem,) = problems
    assert problem.key == "global.x.sensitive"
    assert message in problem.message
    assert "host" in problem.fix


def test_a_value_is_also_masked_as_it_looks_in_json() -> None:
    values = values_of('[global]\ntoken = "quo\\"te\\\\back-\u00e9"\n')
    assert values == {'quo"te\\back-é', 'quo\\"te\\\\back-\\u00e9', 'quo\\"te\\\\back-é'}
