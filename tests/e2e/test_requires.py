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


def test_a_dag_runs_after_every_dag_it_waits_for_has_succeeded(
    workspace: Workspace, pit: Pit
) -> None:
    import signal

    from tests.conftest import wait_until
    from tests.e2e.test_serve import finished, serve

    yearly = 'schedule = "0 0 1 1 *"'  # runs come through the API here
    workspace.shell_project("orders", {"fetch": "echo orders\n"}, dag_keys=yearly)
    workspace.shell_project("stock", {"fetch": "echo stock\n"}, dag_keys=yearly)
    workspace.shell_project(
        "report", {"build": "echo built\n"}, extra='[dag.after]\ndags = ["orders", "stock"]\n'
    )
    with serve(pit, workspace) as server:
        orders = server.client.post("/api/dags/orders/runs").json()["run_id"]
        wait_until(lambda: finished(workspace, orders), what="the orders run")
        stock = server.client.post("/api/dags/stock/runs").json()["run_id"]
        wait_until(lambda: finished(workspace, stock), what="the stock run")
        wait_until(lambda: len(workspace.run_dirs("report")) == 1, what="the report run")
        (report,) = workspace.run_dirs("report")
        wait_until(lambda: finished(workspace, report.name), what="the report to end")
        orders_again = server.client.post("/api/dags/orders/runs").json()["run_id"]
        wait_until(lambda: finished(workspace, orders_again), what="orders again")
        server.signal(signal.SIGTERM)
        assert server.exit_code() == 0
    record = workspace.manifest(report)
    assert (record["trigger"], record["state"]) == ("after", "success")
    # orders alone again is not enough: stock has not succeeded since the report ran
    assert len(workspace.run_dirs("report")) == 1


def test_dags_that_would_start_each_other_are_a_problem(workspace: Workspace, pit: Pit) -> None:
    workspace.shell_project("a", {"x": ":\n"}, extra='[dag.after]\ndags = ["b"]\n')
    workspace.shell_project("b", {"x": ":\n"}, extra='[dag.after]\ndags = ["a"]\n')
    workspace.shell_project("c", {"x": ":\n"}, dag_keys='requires = ["nosuch"]')
    result = pit("validate")
    assert result.returncode == 1
    assert "dag.after.dags: DAGs that would start each other for ever: a -> b -> a" in result.stdout
    assert "dag.requires: no DAG 'nosuch' here" in result.stdout
