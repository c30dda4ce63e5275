"""The data plane end to end: secrets through the broker, SQL tasks, Parquet between tasks,
and masking, run by the real `pit` command against real embedded databases."""

from __future__ import annotations

import json
import sqlite3
import sys

import pytest

pytestmark = pytest.mark.e2e

PYTHON = f"$ {sys.executable}"  # pit's own interpreter has pyarrow: no uv sync needed offline

SECRETS = """
[global]
warehouse = "sqlite:///warehouse.db"

[shop]
api_token = "tok-5ecret-9"

[shop.vendor]
user = "acme"
password = "vendor-pa55"
"""


def shop(workspace, tasks: str, files: dict[str, str]) -> None:
    workspace.write("secrets.toml", SECRETS)
    workspace.config('secrets_dir = "secrets.toml"\n')
    workspace.project(
        "shop",
        f"""
        [dag]
        name = "shop"

        [dag.sql]
        connection = "warehouse"
        {tasks}
        """,
        files,
    )


def test_sql_save_python_load_through_parquet(workspace, pit) -> None:
    shop(
        workspace,
        """
        [[tasks]]
        name = "seed"
        script = "seed.sql"

        [[tasks]]
        name = "extract"
        type = "save"
        script = "extract.sql"
        output = "orders"
        depends_on = ["seed"]

        [[tasks]]
        name = "double"
        script = "double.py"
        runner = "RUNNER"
        depends_on = ["extract"]

        [[tasks]]
        name = "load"
        type = "load"
        source = "doubled"
        table = "doubled"
        mode = "create_or_replace"
        depends_on = ["double"]
        """.replace("RUNNER", PYTHON),
        {
            "seed.sql": """
                CREATE TABLE orders (id INTEGER PRIMARY KEY, amount REAL NOT NULL);
                INSERT INTO orders VALUES (1, 10.5), (2, 20.0), (3, 1.25);
            """,
            "extract.sql": "SELECT id, amount FROM orders ORDER BY id;\n",
            "double.py": """
                import pyarrow.compute as pc
                from pit_sdk import read_input, write_output

                orders = read_input("orders")
                doubled = orders.set_column(1, "amount", pc.multiply(orders["amount"], 2))
                print(write_output("doubled", doubled))
            """,
        },
    )
    result = pit("run", "shop")
    assert result.returncode == 0, result.stdout + result.stderr
    run = workspace.only_run("shop")
    assert workspace.task_states(run) == dict.fromkeys(
        ["seed", "extract", "double", "load"], "success"
    )
    assert (run / "data" / "orders.parquet").is_file()
    with sqlite3.connect(workspace.root / "warehouse.db") as db:
        assert db.execute("SELECT id, amount FROM doubled ORDER BY id").fetchall() == [
            (1, 21.0),
            (2, 40.0),
            (3, 2.5),
        ]
    assert "saved 3 rows to data/orders.parquet" in (run / "logs" / "extract.log").read_text()
    assert "loaded 3 rows into doubled" in (run / "logs" / "load.log").read_text()


def test_secrets_come_from_the_broker_masked_and_never_from_the_environment(workspace, pit) -> None:
    shop(
        workspace,
        f"""
        [[tasks]]
        name = "peek"
        script = "peek.py"
        runner = "{PYTHON}"
        """,
        {
            "peek.py": """
                import json, os
                from pathlib import Path
                from pit_sdk import get_secret, get_secret_field

                token = get_secret("api_token")
                vendor = json.loads(get_secret("vendor"))
                Path(os.environ["PIT_DATA_DIR"], "seen.json").write_text(json.dumps(
                    {"token": token, "vendor": vendor,
                     "password": get_secret_field("vendor", "password"),
                     "environ": dict(os.environ)}))
                print(f"token={token}")
                print("split across writes: tok-5e", end="", flush=True)
                print("cret-9 and vendor-pa55")
            """,
        },
    )
    result = pit("run", "shop/peek", "--verbose")
    assert result.returncode == 0, result.stdout + result.stderr
    run = workspace.only_run("shop")
    seen = json.loads((run / "data" / "seen.json").read_text())
    assert seen["token"] == "tok-5ecret-9"
    assert seen["vendor"] == {"user": "acme", "password": "vendor-pa55"}
    assert seen["password"] == "vendor-pa55"
    assert "PIT_SOCKET" in seen["environ"]
    assert not any(
        secret in value
        for value in seen["environ"].values()
        for secret in ("tok-5ecret-9", "vendor-pa55", "warehouse.db")
    )
    log = (run / "logs" / "peek.log").read_text()
    assert "token=***" in log
    assert "split across writes: *** and ***" in log
    for shown in (log, result.stdout):
        assert "tok-5ecret-9" not in shown
        assert "vendor-pa55" not in shown
    assert "[peek] token=***" in result.stdout
    audit = [json.loads(line) for line in (run / "secret_access.jsonl").read_text().splitlines()]
    assert [(a["task"], a["secret"]) for a in audit] == [
        ("peek", "api_token"),
        ("peek", "vendor"),
        ("peek", "vendor.password"),
    ]


def test_a_task_reads_only_the_secrets_its_list_names_and_refusals_are_audited(
    workspace, pit
) -> None:
    workspace.write("secrets.toml", SECRETS)
    workspace.config('secrets_dir = "secrets.toml"\n')
    ask = """
        from pit_sdk import get_secret
        for name in NAMES:
            try:
                get_secret(name)
                print(f"read {name}")
            except Exception as exc:
                print(f"could not read {name}: {exc}")
    """
    workspace.project(
        "shop",
        f"""
        [dag]
        name = "shop"
        secrets = ["api_token"]

        [[tasks]]
        name = "narrow"
        script = "narrow.py"
        runner = "{PYTHON}"

        [[tasks]]
        name = "wide"
        script = "wide.py"
        runner = "{PYTHON}"
        secrets = ["vendor"]
        """,
        {
            "narrow.py": ask.replace("NAMES", '["api_token", "vendor"]'),
            "wide.py": ask.replace("NAMES", '["vendor"]'),
        },
    )
    result = pit("run", "shop")
    assert result.returncode == 0, result.stdout + result.stderr
    run = workspace.only_run("shop")
    narrow = (run / "logs" / "narrow.log").read_text()
    assert "read api_token" in narrow
    assert "could not read vendor: SDK error: get_secret: refused: task 'narrow'" in narrow
    assert "read vendor" in (run / "logs" / "wide.log").read_text()
    audit = [json.loads(line) for line in (run / "secret_access.jsonl").read_text().splitlines()]
    assert sorted((a["task"], a["secret"], a["outcome"], a["found_by"]) for a in audit) == [
        ("narrow", "api_token", "accessed", "process group"),
        ("narrow", "vendor", "refused", "process group"),
        ("wide", "vendor", "accessed", "process group"),
    ]


def test_a_sql_task_timeout_stops_the_query_in_the_database(workspace, pit) -> None:
    shop(
        workspace,
        """
        [[tasks]]
        name = "forever"
        script = "forever.sql"
        timeout = "1s"
        """,
        {
            "forever.sql": """
                WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n)
                SELECT count(*) FROM n;
            """,
        },
    )
    result = pit("run", "shop", timeout=30)
    assert result.returncode == 1
    task = workspace.task(workspace.only_run("shop"), "forever")
    assert task["state"] == "failed"
    assert task["error"] == "timed out after 1.0s"


def test_without_secrets_sql_tasks_run_in_stub_mode(workspace, pit) -> None:
    workspace.project(
        "stub",
        """
        [dag]
        name = "stub"

        [dag.sql]
        connection = "warehouse"

        [[tasks]]
        name = "q"
        script = "q.sql"

        [[tasks]]
        name = "load"
        type = "load"
        source = "x"
        table = "t"
        depends_on = ["q"]
        """,
        {"q.sql": "SELECT 1;\n"},
    )
    result = pit("run", "stub")
    assert result.returncode == 0, result.stdout + result.stderr
    run = workspace.only_run("stub")
    assert "STUB MODE" in (run / "logs" / "q.log").read_text()
    assert "SELECT 1;" in (run / "logs" / "q.log").read_text()
    assert "data/x into t" in (run / "logs" / "load.log").read_text()


def test_a_missing_connection_secret_fails_the_task_clearly(workspace, pit) -> None:
    shop(
        workspace,
        """
        [[tasks]]
        name = "q"
        script = "q.sql"
        connection = "nowhere"
        """,
        {"q.sql": "SELECT 1;\n"},
    )
    result = pit("run", "shop")
    assert result.returncode == 1
    error = workspace.task(workspace.only_run("shop"), "q")["error"]
    assert error == "connection secret 'nowhere' is not in the secrets file"
