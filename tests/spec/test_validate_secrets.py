"""`validate_secret_names`: every secret a DAG names must be in the secrets file."""

from __future__ import annotations

from pit.spec.dag import parse_dag
from pit.spec.secrets import parse_secrets
from pit.spec.validate import validate_secret_names

DAG = """
[dag]
name = "etl"

[dag.sql]
connection = "warehouse"

[dag.webhook]
token_secret = "hook_token"

[[tasks]]
name = "q"
script = "q.sql"

[[tasks]]
name = "l"
type = "load"
source = "s"
table = "t"
connection = "reporting"

[[tasks]]
name = "sh"
script = "x.sh"
"""


def problems_with(secrets_text: str) -> dict[str, str]:
    dag, problems = parse_dag(DAG, "projects/etl/pit.toml")
    assert dag is not None
    assert problems == []
    secrets, secret_problems = parse_secrets(secrets_text, "secrets.toml")
    assert secret_problems == []
    return {p.key: p.message for p in validate_secret_names(dag, "projects/etl/pit.toml", secrets)}


def test_every_missing_secret_is_named_with_its_key() -> None:
    assert problems_with("[global]\nother = 'x'\n") == {
        "dag.sql.connection": "secret 'warehouse' is not in the secrets file",
        "tasks[1].connection": "secret 'reporting' is not in the secrets file",
        "dag.webhook.token_secret": "secret 'hook_token' is not in the secrets file",
    }


def test_secrets_are_found_in_the_dag_section_or_global() -> None:
    text = """
    [global]
    warehouse = "sqlite:///w.db"
    hook_token = "t0ken"

    [etl.reporting]
    driver = "postgres"
    host = "db"
    """
    assert problems_with(text.replace("    ", "")) == {}


def test_a_secret_of_another_dag_does_not_count() -> None:
    text = "[global]\nwarehouse='a'\nhook_token='b'\n[other]\nreporting='c'\n"
    assert set(problems_with(text)) == {"tasks[1].connection"}
