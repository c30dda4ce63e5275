"""Start-up: each command imports only what it needs, as `python -X importtime` shows.

A cron job or CI step may start `pit` many times a day; trio, typer (and the pydantic it brings
at dispatch), pyarrow and rich each cost tens of milliseconds to import. These tests start the
real entry point in a fresh interpreter and read the modules it imported.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Pit, Workspace

pytestmark = pytest.mark.e2e

HEAVY = {"trio", "typer", "pydantic", "pyarrow", "rich", "croniter", "quart", "hypercorn"}

_IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)$", re.MULTILINE)


def heavy_imports(*args: str | Path, modules: set[str] = HEAVY) -> set[str]:
    """Which of `modules` (top-level packages, or whole module names) `pit <args>` imported."""
    done = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-c",
            "from pit.cli.main import main; main()",
            *map(str, args),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    imported = set(_IMPORTED.findall(done.stderr))
    assert "pit" in imported, done.stderr[-2000:]  # the pattern did read the report
    return {module for module in modules if module in imported}


@pytest.fixture
def ran(workspace: Workspace, pit: Pit) -> Workspace:
    """A workspace with one DAG that has run once."""
    workspace.shell_project(
        "etl",
        {"load": "echo loaded"},
        extra='[[outputs]]\nname = "t"\ntype = "table"\nlocation = "dw.t"\n',
    )
    assert pit("run", "etl").returncode == 0
    return workspace


def test_validate_imports_no_trio_typer_pydantic_or_pyarrow(ran: Workspace) -> None:
    assert heavy_imports("-C", ran.root, "validate") == set()


def test_logs_outputs_and_status_import_nothing_heavy(ran: Workspace) -> None:
    assert heavy_imports("-C", ran.root, "logs", "etl", "--list") == set()
    assert heavy_imports("-C", ran.root, "outputs", "--json") == set()
    assert heavy_imports("-C", ran.root, "status") == set()  # croniter: for a schedule only


def test_run_imports_trio_and_nothing_else_heavy(ran: Workspace) -> None:
    assert heavy_imports("-C", ran.root, "run", "etl") == {"trio"}


def test_help_imports_typer_without_pydantic_or_rich(ran: Workspace) -> None:
    assert heavy_imports("--help") == {"typer"}
