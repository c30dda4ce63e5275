"""Whole runs through the real `pit`: the shipped quickstart example and a custom runner."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def examples_copy(tmp_path):
    """examples/ copied without runs or venvs, so that running it leaves the repo untouched.

    The project's uv.lock is kept: offline, uv can install its pinned pyarrow from the wheel
    cache pit's own sync filled, where resolving afresh needs index pages a new machine lacks."""
    copy = tmp_path / "examples"
    shutil.copytree(
        EXAMPLES,
        copy,
        ignore=shutil.ignore_patterns("runs", "repo_cache", ".venv", "__pycache__", "warehouse.db"),
    )
    return copy


def test_quickstart_example_runs(examples_copy, workspace, pit):
    # Offline: uv installs the project's pyarrow from its cache, filled when pit's own
    # environment was synced. Tests touch no network.
    result = pit(
        "-C", str(examples_copy), "run", "quickstart", with_root=False, env={"UV_OFFLINE": "1"}
    )

    assert result.returncode == 0, result.stdout + result.stderr
    (run,) = (examples_copy / "runs").iterdir()
    manifest = workspace.manifest(run)
    assert manifest["state"] == "success"
    tasks = {t["name"]: t for t in manifest["tasks"]}
    assert set(tasks) == {
        "orders",
        "customers",
        "flaky_api",
        "enrich",
        "report",
        "seed_sales",
        "extract_sales",
        "summarise",
        "load_summary",
    }
    assert {t["state"] for t in tasks.values()} == {"success"}
    assert tasks["flaky_api"]["attempts"] == 2
    assert all(t["attempts"] == 1 for name, t in tasks.items() if name != "flaky_api")
    assert "503" in (run / "logs" / "flaky_api.log").read_text()  # the failed first attempt
    report = (run / "data" / "report.txt").read_text()
    assert report.startswith("order totals by customer")
    # The data plane: SQL save -> Parquet -> pit_sdk in Python -> SQL load into SQLite.
    with sqlite3.connect(examples_copy / "warehouse.db") as db:
        rows = db.execute("SELECT region, total, sales FROM sales_by_region ORDER BY region")
        assert rows.fetchall() == [("east", 375.0, 2), ("north", 162.0, 2), ("south", 93.5, 2)]
    summarise = (run / "logs" / "summarise.log").read_text()
    assert "with token ***" in summarise
    assert "demo-token-8c1f" not in summarise


def test_quickstart_example_validates(examples_copy, pit):
    result = pit("-C", str(examples_copy), "validate", "--json", with_root=False)

    assert result.returncode == 0, result.stdout
    assert result.stdout.strip() == "[]"


def test_custom_runner_puts_its_words_before_the_script(workspace, pit):
    workspace.project(
        "custom",
        """
        [dag]
        name = "custom"

        [[tasks]]
        name = "hello"
        script = "tasks/hello.py"
        runner = "$ python3 -X utf8"
        """,
        {
            "tasks/hello.py": """\
            import os
            import sys

            print(f"utf8_mode={sys.flags.utf8_mode} script={sys.argv[0]}")
            print(f"task={os.environ['PIT_TASK_NAME']}")
            """
        },
    )

    result = pit("run", "custom")

    assert result.returncode == 0, result.stdout + result.stderr
    run = workspace.only_run("custom")
    log = (run / "logs" / "hello.log").read_text()
    assert f"utf8_mode=1 script={run / 'project' / 'tasks' / 'hello.py'}" in log
    assert "task=hello" in log


def test_custom_runner_that_does_not_exist_fails_the_task(workspace, pit):
    workspace.project(
        "custom",
        """
        [dag]
        name = "custom"

        [[tasks]]
        name = "hello"
        script = "tasks/hello.js"
        runner = "$ no-such-interpreter-for-pit"
        """,
        {"tasks/hello.js": "console.log('hi')\n"},
    )

    result = pit("run", "custom")

    assert result.returncode == 1
    task = workspace.task(workspace.only_run("custom"), "hello")
    assert task["state"] == "failed"
    assert "no-such-interpreter-for-pit" in task["error"]


def test_retention_removes_old_runs_and_compresses_old_logs(workspace, pit):
    """keep_runs keeps the newest runs of a DAG (folders and store rows alike); the logs of
    runs ended longer ago than archive_logs_after are compressed, and `pit logs` reads them."""
    import time

    from pit.store.runstore import RunStore

    workspace.config('keep_runs = 2\narchive_logs_after = "1s"\n')
    workspace.shell_project("etl", {"work": "echo hello from $PIT_RUN_ID\n"})
    for _ in range(2):
        assert pit("run", "etl").returncode == 0
        time.sleep(1.1)
    first, second = workspace.run_dirs("etl")
    assert (first / "logs" / "work.log.gz").is_file()  # archived when the second ended
    assert not (first / "logs" / "work.log").exists()
    shown = pit("logs", "etl", "--run-id", first.name)
    assert shown.returncode == 0, shown.stderr
    assert f"hello from {first.name}" in shown.stdout

    assert pit("run", "etl").returncode == 0
    kept = workspace.run_dirs("etl")
    assert [run.name for run in kept][:1] == [second.name]
    assert len(kept) == 2
    assert not first.exists()
    with RunStore.open(workspace.root / ".pit" / "pit.db") as store:
        assert sorted(r.run_id for r in store.runs()) == [run.name for run in kept]
