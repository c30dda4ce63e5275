"""dbt tasks for real: dbt-core 1.11 with dbt-duckdb through uvx, the profile made by pit from
the connection secret (no ~/.dbt), a database file in the workspace."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import Pit, Workspace
from tests.gitremote import Upstream

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DBT_VERSION = "1.11.16"

PIT_TOML = f"""\
[dag]
name = "shop"

[dag.dbt]
version = "{DBT_VERSION}"
adapter = "dbt-duckdb"
project_dir = "dbt_repo"
connection = "shop_db"

[[tasks]]
name = "run"
script = "run"
runner = "dbt"

[[tasks]]
name = "test"
script = "test"
runner = "dbt"
depends_on = ["run"]
"""

FRESHNESS_TASK = """\
[[tasks]]
name = "run"
script = "source freshness"
runner = "dbt"
"""

FILES = {
    "dbt_repo/dbt_project.yml": 'name: shop\nversion: "1.0.0"\nprofile: shop\n'
    'model-paths: ["models"]\n',
    "dbt_repo/models/orders.sql": "select 1 as id, 'open' as status\n"
    "union all select 2, 'closed'\n",
    "dbt_repo/models/schema.yml": "version: 2\nmodels:\n  - name: orders\n    columns:\n"
    "      - name: id\n        data_tests: [not_null, unique]\n",
}


@pytest.fixture(autouse=True)
def needs_uvx() -> None:
    if shutil.which("uvx") is None:
        pytest.fail("uvx is missing: it comes with uv, which runs this suite")


def test_a_dbt_project_runs_on_the_profile_pit_writes(workspace: Workspace, pit: Pit) -> None:
    workspace.project("shop", PIT_TOML, FILES)
    secrets = workspace.write("secrets.toml", '[global.shop_db]\npath = "shop.duckdb"\n')
    done = pit("--secrets", str(secrets), "run", "shop")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (workspace.root / "shop.duckdb").is_file()  # the secret's path, in the workspace
    run = workspace.run_dirs("shop")[-1]
    logs = run / "logs"
    shown = (logs / "run.log").read_text().splitlines()
    assert re.fullmatch(r"OK orders \(\d+\.\ds\)", shown[-2]), shown
    assert re.fullmatch(r"Completed in \d+\.\ds", shown[-1])
    assert "PASS not_null_orders_id" in (logs / "test.log").read_text()
    raw = [json.loads(line) for line in (logs / "run.dbt.jsonl").read_text().splitlines()]
    assert any(event["info"]["name"] == "LogModelResult" for event in raw)
    results = json.loads((logs / "test.run_results.json").read_text())
    assert {r["unique_id"].split(".")[2] for r in results["results"]} >= {"not_null_orders_id"}
    assert (logs / "run.manifest.json").is_file()
    assert not list(run.glob("**/profiles.yml"))  # the profile never lands in the run


def test_a_model_that_fails_fails_its_task(workspace: Workspace, pit: Pit) -> None:
    broken = {**FILES, "dbt_repo/models/orders.sql": "select * from no_such_table\n"}
    workspace.project("shop", PIT_TOML, broken)
    secrets = workspace.write("secrets.toml", '[global.shop_db]\npath = "shop.duckdb"\n')
    done = pit("--secrets", str(secrets), "run", "shop")
    assert done.returncode == 1
    run = workspace.run_dirs("shop")[-1]
    manifest = workspace.manifest(run)
    states = {task["name"]: task["state"] for task in manifest["tasks"]}
    assert states == {"run": "failed", "test": "upstream_failed"}
    assert manifest["tasks"][0]["error"] == "exit code 1: model orders"
    log = (run / "logs" / "run.log").read_text()
    assert "ERROR orders" in log
    assert "no_such_table" in log


def test_a_failing_data_test_and_a_stale_source_are_said(workspace: Workspace, pit: Pit) -> None:
    checks = {
        **FILES,
        "dbt_repo/models/schema.yml": FILES["dbt_repo/models/schema.yml"]
        + "      - name: status\n        data_tests:\n          - accepted_values:\n"
        "              arguments:\n                values: ['open']\n",
        "dbt_repo/models/sources.yml": "version: 2\nsources:\n  - name: raw\n"
        "    schema: main\n    tables:\n      - name: loads\n        loaded_at_field: loaded_at\n"
        "        config:\n          freshness:\n            warn_after: {count: 1, period: hour}\n",
        "dbt_repo/models/loads.sql": "select timestamp '2000-01-01' as loaded_at\n",
    }
    workspace.project("shop", PIT_TOML.replace('script = "test"', 'script = "build"'), checks)
    fresh = PIT_TOML.replace('name = "shop"', 'name = "fresh"', 1)
    workspace.project("fresh", fresh[: fresh.index("[[tasks]]")] + FRESHNESS_TASK, checks)
    secrets = workspace.write("secrets.toml", '[global.shop_db]\npath = "shop.duckdb"\n')
    done = pit("--secrets", str(secrets), "run", "shop")
    assert done.returncode == 1
    run = workspace.run_dirs("shop")[-1]
    built = (run / "logs" / "test.log").read_text()
    failed = r"^FAIL accepted_values_orders_status__open \(\d+\.\ds, 1 failures\)$"
    assert re.search(failed, built, re.M), built
    assert "PASS unique_orders_id" in built
    task = workspace.manifest(run)["tasks"][1]
    assert task["error"] == "exit code 1: test accepted_values_orders_status__open"

    pit("--secrets", str(secrets), "run", "fresh")
    said = (workspace.run_dirs("fresh")[-1] / "logs" / "run.log").read_text()
    assert re.search(r"^STALE raw\.loads \(\d+\.\ds\)$", said, re.M), said


def test_a_missing_connection_field_fails_before_dbt_starts(workspace: Workspace, pit: Pit) -> None:
    workspace.project("shop", PIT_TOML, FILES)
    secrets = workspace.write("secrets.toml", '[global.shop_db]\nschema = "main"\n')
    done = pit("--secrets", str(secrets), "run", "shop")
    assert done.returncode != 0
    assert "secret 'shop_db' has no field 'path' that dbt-duckdb needs" in done.stderr
    manifest = workspace.manifest(workspace.run_dirs("shop")[-1])
    assert manifest["state"] == "failed"
    assert not (workspace.run_dirs("shop")[-1] / "logs" / "run.log").exists()


def test_dbt_postgres_runs_against_a_real_server(
    workspace: Workspace, pit: Pit, fresh_postgres_url: str
) -> None:
    url = urlsplit(fresh_postgres_url)
    password = "never-shown-4711"  # the cluster trusts local clients: any password passes
    workspace.project("shop", PIT_TOML.replace('"dbt-duckdb"', '"dbt-postgres"'), FILES)
    secrets = workspace.write(
        "secrets.toml",
        f'[global.shop_db]\nhost = "{url.hostname}"\nport = {url.port}\n'
        f'user = "{url.username}"\npassword = "{password}"\ndatabase = "{url.path[1:]}"\n',
    )
    done = pit("--secrets", str(secrets), "run", "shop")
    assert done.returncode == 0, done.stdout + done.stderr
    logs = workspace.run_dirs("shop")[-1] / "logs"
    assert re.search(r"^OK orders \(\d+\.\ds", (logs / "run.log").read_text(), re.M)
    assert "PASS unique_orders_id" in (logs / "test.log").read_text()
    for log in logs.iterdir():
        assert password not in log.read_text(errors="replace"), log


def test_pit_sync_installs_a_git_backed_dbt_projects_dbt(
    workspace: Workspace, pit: Pit, tmp_path: Path
) -> None:
    upstream = Upstream(tmp_path / "remote")
    upstream.commit(FILES)
    toml = PIT_TOML.replace(
        '[dag]\nname = "shop"\n',
        f'[dag]\nname = "shop"\ngit_url = "{upstream.url}"\ngit_ref = "main"\n',
    )
    workspace.project("shop", toml)
    done = pit("sync", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    (result,) = json.loads(done.stdout)
    assert result["dbt"] is True
    assert result["error"] is None
