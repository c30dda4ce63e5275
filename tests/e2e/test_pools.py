"""Pools under the real `pit run` and `pit serve`: tasks naming a pool of one slot never run at
once, a freed slot goes to the highest priority, and a waiting task says which pool it waits for."""

from __future__ import annotations

import signal

import pytest

from tests.conftest import Pit, Workspace, wait_until
from tests.e2e.test_serve import finished, serve

pytestmark = pytest.mark.e2e

WORK = 'echo "start $PIT_TASK_NAME" >> "$PIT_WORKSPACE/order"; sleep {seconds}; '
WORK += 'echo "end $PIT_TASK_NAME" >> "$PIT_WORKSPACE/order"\n'


def pooled(
    workspace: Workspace, name: str, priorities: dict[str, int], seconds: float, keys: str = ""
) -> None:
    lines = ["[dag]", f'name = "{name}"', 'overlap = "allow"', keys, ""]
    for task, priority in priorities.items():
        lines += [
            "[[tasks]]",
            f'name = "{task}"',
            f'script = "tasks/{task}.sh"',
            'pool = "db"',
            f"priority = {priority}",
            "",
        ]
    files = {f"tasks/{task}.sh": WORK.format(seconds=seconds) for task in priorities}
    workspace.project(name, "\n".join(lines), files)


def test_a_pool_of_one_runs_its_tasks_one_at_a_time_highest_priority_first(
    workspace: Workspace, pit: Pit
) -> None:
    workspace.config("[pools]\ndb = 1\n")
    pooled(workspace, "load", {"a": 0, "b": 0, "c": 5}, seconds=0.3)
    result = pit("run", "load")
    assert result.returncode == 0, result.stdout + result.stderr
    order = (workspace.root / "order").read_text().split("\n")
    assert order[:6] == ["start a", "end a", "start c", "end c", "start b", "end b"]
    tasks = workspace.manifest(workspace.only_run("load"))["tasks"]
    assert {t["name"]: t.get("pool") for t in tasks} == {"a": "db", "b": "db", "c": "db"}


def test_a_pool_no_config_names_is_a_problem(workspace: Workspace, pit: Pit) -> None:
    workspace.config("[pools]\nwarehouse = 2\n")
    pooled(workspace, "load", {"a": 0}, seconds=0)
    result = pit("validate")
    assert result.returncode == 1
    assert "tasks[0].pool: no pool 'db' in pit_config.toml" in result.stdout


def test_runs_of_two_dags_share_a_pool_under_pit_serve(workspace: Workspace, pit: Pit) -> None:
    workspace.config("[pools]\ndb = 1\n")
    yearly = 'schedule = "0 0 1 1 *"'  # something for pit serve to serve; runs come by the API
    pooled(workspace, "first", {"x": 0}, seconds=2, keys=yearly)
    pooled(workspace, "second", {"y": 0}, seconds=0, keys=yearly)
    with serve(pit, workspace) as server:
        one = server.client.post("/api/dags/first/runs").json()["run_id"]
        wait_until(lambda: workspace.running_task("first", "x"), what="x to hold the slot")
        two = server.client.post("/api/dags/second/runs").json()["run_id"]

        def queued() -> bool:
            path = workspace.root / "runs" / two / "run.json"
            if not path.exists():
                return False
            (task,) = workspace.manifest(path.parent)["tasks"]
            return task["state"] == "queued" and task["pool"] == "db"

        wait_until(queued, what="y to wait for the pool")
        status = pit("status")
        assert "pool db: 1 of 1 slots in use, 1 tasks queued" in status.stdout, status.stderr
        wait_until(lambda: finished(workspace, one) and finished(workspace, two), what="both")
        server.signal(signal.SIGTERM)
        assert server.exit_code() == 0
    order = (workspace.root / "order").read_text().split("\n")
    assert order[:4] == ["start x", "end x", "start y", "end y"]
