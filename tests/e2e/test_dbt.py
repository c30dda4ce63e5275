"""dbt tasks for real: dbt-core 1.11 with dbt-duckdb through uvx, the profile made by pit from
the connection secret (no ~/.dbt), a database file in the workspace."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import Pit, Workspace

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
    assert "orders" in (run / "logs" / "run.log").read_text()
    assert not list(run.glob("**/profiles.yml"))  # the profile never lands in the run


def test_a_model_that_fails_fails_its_task(workspace: Workspace, pit: Pit) -> None:
    broken = {**FILES, "dbt_repo/models/orders.sql": "select * from no_such_table\n"}
    workspace.project("shop", PIT_TOML, broken)
    secrets = workspace.write("secrets.toml", '[global.shop_db]\npath = "shop.duckdb"\n')
    done = pit("--secrets", str(secrets), "run", "shop")
    assert done.returncode == 1
    manifest = workspace.manifest(workspace.run_dirs("shop")[-1])
    states = {task["name"]: task["state"] for task in manifest["tasks"]}
    assert states == {"run": "failed", "test": "upstream_failed"}


def test_a_missing_connection_field_fails_before_dbt_starts(workspace: Workspace, pit: Pit) -> None:
    workspace.project("shop", PIT_TOML, FILES)
    secrets = workspace.write("secrets.toml", '[global.shop_db]\nschema = "main"\n')
    done = pit("--secrets", str(secrets), "run", "shop")
    assert done.returncode != 0
    assert "secret 'shop_db' has no field 'path' that dbt-duckdb needs" in done.stderr
    manifest = workspace.manifest(workspace.run_dirs("shop")[-1])
    assert manifest["state"] == "failed"
    assert not (workspace.run_dirs("shop")[-1] / "logs" / "run.log").exists()
