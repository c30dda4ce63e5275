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


LISTED = """
[dag]
name = "etl"
secrets = ["api_token", "vendor"]

[[tasks]]
name = "a"
script = "a.sh"

[[tasks]]
name = "b"
script = "b.sh"
secrets = ["warehouse", "api_tokn"]

[[tasks]]
name = "c"
script = "c.sh"
secrets = []
"""


def test_the_names_in_secrets_lists_must_be_in_the_file() -> None:
    dag, problems = parse_dag(LISTED, "projects/etl/pit.toml")
    assert dag is not None
    assert problems == []
    secrets, _ = parse_secrets("[global]\napi_token='t'\nwarehouse='w'\n", "secrets.toml")
    found = validate_secret_names(dag, "projects/etl/pit.toml", secrets)
    assert {p.key: p.message for p in found} == {
        "dag.secrets[1]": "secret 'vendor' is not in the secrets file",
        "tasks[1].secrets[1]": "secret 'api_tokn' is not in the secrets file",
    }


def test_a_task_list_replaces_the_dag_list_and_an_empty_one_reads_nothing() -> None:
    dag, _ = parse_dag(LISTED, "projects/etl/pit.toml")
    assert dag is not None
    assert dag.secret_lists() == {
        "a": frozenset({"api_token", "vendor"}),
        "b": frozenset({"warehouse", "api_tokn"}),
        "c": frozenset(),
    }
    unlisted, _ = parse_dag(LISTED.replace('secrets = ["api_token", "vendor"]', ""), "p.toml")
    assert unlisted is not None
    assert unlisted.secret_lists() == {"b": frozenset({"warehouse", "api_tokn"}), "c": frozenset()}


def test_a_secrets_list_must_be_a_list_of_names() -> None:
    _, problems = parse_dag(LISTED.replace("secrets = []", 'secrets = "api_token"'), "p.toml")
    assert [(p.key, p.message) for p in problems] == [
        ("tasks[2].secrets", "expected a list of strings, got a string")
    ]
