"""Data dependencies under the real `pit run`: a DAG that requires another runs only when the
other has succeeded recently enough."""

from __future__ import annotations

import pytest

from tests.conftest import Pit, Workspace

pytestmark = pytest.mark.e2e


def test_a_run_starts_only_once_its_required_dag_has_succeeded_recently(
    workspace: Workspace, pit: Pit
) -> None:
    workspace.shell_project("ingest", {"fetch": "echo fetched\n"})
    workspace.shell_project(
        "report",
        {"build": "echo built\n"},
        dag_keys='requires = [{ dag = "ingest", max_age = "1h" }]',
    )
    refused = pit("run", "report")
    assert refused.returncode == 1
    record = workspace.manifest(workspace.only_run("report"))
    assert record["state"] == "failed"
    assert record["error"] == "required DAG ingest has no success within 1h00m (none yet)"
    assert [t["state"] for t in record["tasks"]] == ["skipped"]

    assert pit("run", "ingest").returncode == 0
    ran = pit("run", "report")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    states = [workspace.manifest(r)["state"] for r in workspace.run_dirs("report")]
    assert states == ["failed", "success"]


def test_a_run_may_be_skipped_instead(workspace: Workspace, pit: Pit) -> None:
    workspace.shell_project("ingest", {"fetch": "exit 1\n"})
    workspace.shell_project(
        "report",
        {"build": "echo built\n"},
        dag_keys='requires = ["ingest"]\nrequires_else = "skip"',
    )
    assert pit("run", "ingest").returncode == 1
    skipped = pit("run", "report")
    record = workspace.manifest(workspace.only_run("report"))
    assert (record["state"], skipped.returncode) == ("cancelled", 130)
    assert record["error"].startswith("skipped: required DAG ingest's last run ")
    assert record["error"].endswith(" failed")
