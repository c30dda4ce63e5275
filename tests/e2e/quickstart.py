"""The shipped quickstart example, copied and checked as a whole run, wherever it ran."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TASKS = {
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


def copy_examples(base: Path) -> Path:
    """examples/ copied without runs or venvs, so that running it leaves the repo untouched.

    The project's uv.lock is kept: offline, uv can install its pinned pyarrow from the wheel
    cache pit's own sync filled, where resolving afresh needs index pages a new machine lacks."""
    copy = base / "examples"
    shutil.copytree(
        EXAMPLES,
        copy,
        ignore=shutil.ignore_patterns("runs", "repo_cache", ".venv", "__pycache__", "warehouse.db"),
    )
    return copy


def assert_quickstart_succeeded(copy: Path) -> tuple[Path, dict[str, dict[str, Any]]]:
    """The one run of the copy did all the quickstart does; its folder and its tasks."""
    (run,) = (copy / "runs").iterdir()
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["state"] == "success"
    tasks = {t["name"]: t for t in manifest["tasks"]}
    assert set(tasks) == TASKS
    assert {t["state"] for t in tasks.values()} == {"success"}
    assert tasks["flaky_api"]["attempts"] == 2
    assert all(t["attempts"] == 1 for name, t in tasks.items() if name != "flaky_api")
    assert "503" in (run / "logs" / "flaky_api.log").read_text()  # the failed first attempt
    assert (run / "data" / "report.txt").read_text().startswith("order totals by customer")
    # The data plane: SQL save -> Parquet -> pit_sdk in Python -> SQL load into SQLite.
    with sqlite3.connect(copy / "warehouse.db") as db:
        rows = db.execute("SELECT region, total, sales FROM sales_by_region ORDER BY region")
        assert rows.fetchall() == [("east", 375.0, 2), ("north", 162.0, 2), ("south", 93.5, 2)]
    summarise = (run / "logs" / "summarise.log").read_text()
    assert "with token ***" in summarise
    assert "demo-token-8c1f" not in summarise
    return run, tasks
