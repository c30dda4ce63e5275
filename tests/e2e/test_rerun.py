"""Re-running a run: from its failure or from named tasks, reusing what succeeded and its data,
from its snapshot; in the foreground and through pit serve."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Pit, Workspace, wait_until
from tests.e2e.test_api import ended, get, task_running, wait_for_gate
from tests.e2e.test_serve import serve, webhook_dag

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FIXED = "fixed"
"""`b` fails until this file is in the workspace root (the fix happens outside the code)."""


def chain(workspace: Workspace, *, dag_keys: str = "") -> None:
    """a -> b -> c: `a` leaves data/a.txt, `b` needs it and fails until FIXED exists."""
    workspace.shell_project(
        "abc",
        {
            "a": 'echo from-a > "$PIT_DATA_DIR/a.txt"\n',
            "b": f'cat "$PIT_DATA_DIR/a.txt"\n[ -e "{workspace.root / FIXED}" ]\n',
            "c": "echo c ran\n",
        },
        depends_on={"b": ["a"], "c": ["b"]},
        dag_keys=dag_keys,
    )


def tasks_of(record: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {t["name"]: (t["state"], t.get("reused_from")) for t in record["tasks"]}


def test_a_failed_run_is_re_run_from_its_failure_reusing_what_succeeded(
    workspace: Workspace, pit: Pit
) -> None:
    chain(workspace)
    assert pit("run", "abc").returncode == 1
    [failed] = workspace.run_dirs("abc")
    assert tasks_of(workspace.manifest(failed))["c"] == ("upstream_failed", None)
    # The code changes after the failure: the re-run still runs the code that failed.
    (workspace.root / "projects" / "abc" / "tasks" / "c.sh").write_text("exit 7\n")
    (workspace.root / FIXED).touch()

    done = pit("rerun", failed.name)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "reusing a" in done.stderr
    again = workspace.run_dirs("abc")[-1]
    record = workspace.manifest(again)
    assert record["rerun_of"] == failed.name
    assert record["state"] == "success"
    # The same code as the run that failed (its snapshot), whatever the project holds now.
    assert record["code_version"] == workspace.manifest(failed)["code_version"]
    assert record["code_version"].startswith("sha256:")
    assert tasks_of(record) == {
        "a": ("success", failed.name),
        "b": ("success", None),
        "c": ("success", None),
    }
    assert (again / "data" / "a.txt").read_text() == "from-a\n"  # carried over, not re-made
    assert (again / "logs" / "a.log").exists() is False
    assert "c ran" in (again / "logs" / "c.log").read_text()

    latest = pit("rerun", again.name, "--tasks", "c", "--latest-code")
    assert latest.returncode == 1  # c as it is now: exit 7
    record = workspace.manifest(workspace.run_dirs("abc")[-1])
    assert record["code_version"] != workspace.manifest(failed)["code_version"]
    assert tasks_of(record) == {
        "a": ("success", again.name),
        "b": ("success", again.name),
        "c": ("failed", None),
    }
    status = pit("store", "rebuild")
    assert status.returncode == 0


def test_a_re_run_that_cannot_be_made_says_why(workspace: Workspace, pit: Pit) -> None:
    chain(workspace, dag_keys='keep_artifacts = ["logs", "data"]')
    (workspace.root / FIXED).touch()
    assert pit("run", "abc").returncode == 0
    [run] = workspace.run_dirs("abc")
    for args, message in [
        ((), "kept no snapshot of its project (keep_artifacts)"),
        (("--latest-code",), "every task of"),
        (("--latest-code", "--tasks", "x"), "abc has no task x"),
        (("nosuch",), "no run nosuch under"),
    ]:
        target = run.name if args != ("nosuch",) else "nosuch"
        done = pit("rerun", target, *[a for a in args if a != "nosuch"])
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in done.stderr, (args, done.stderr)
    assert pit("rerun", run.name, "--latest-code", "--tasks", "b").returncode == 0
    record = workspace.manifest(workspace.run_dirs("abc")[-1])
    assert tasks_of(record)["a"] == ("success", run.name)


def test_pit_serve_re_runs_a_run_through_its_api(workspace: Workspace, pit: Pit) -> None:
    webhook_dag(workspace, "hook", f'[ -e "{workspace.root / FIXED}" ]\n')
    with serve(pit, workspace) as server:
        first = server.post("hook").json()["run_id"]
        wait_until(lambda: ended(server, first), what="the first run to end")
        assert get(server, f"/api/runs/{first}")["status"] == "failed"
        refused = server.client.post(f"/api/runs/{first}/rerun", json={"tasks": ["nosuch"]})
        assert refused.status_code == 409
        assert "hook has no task nosuch" in refused.json()["error"]
        assert server.client.post("/api/runs/20240101_000000.000_hook/rerun").status_code == 404
        (workspace.root / FIXED).touch()

        done = pit("rerun", first)
        assert done.returncode == 0, done.stdout + done.stderr
        second = done.stdout.split(" as ")[1].split()[0]
        wait_until(lambda: ended(server, second), what="the re-run to end")
        run = get(server, f"/api/runs/{second}")
        assert run["status"] == "success"
        assert run["trigger"] == "api"

        again = server.client.post(f"/api/runs/{second}/rerun", json={"from": "failed"})
        assert again.status_code == 409
        assert "every task of" in again.json()["error"]


def test_a_running_run_is_not_re_run(workspace: Workspace, pit: Pit) -> None:
    webhook_dag(workspace, "slow", wait_for_gate(workspace))
    with serve(pit, workspace) as server:
        run_id = server.client.post("/api/dags/slow/runs").json()["run_id"]
        wait_until(lambda: task_running(server, run_id), what="the task to start")
        refused = server.client.post(f"/api/runs/{run_id}/rerun")
        assert refused.status_code == 409
        assert "has not ended (running): cancel it first" in refused.json()["error"]
        (workspace.root / "gate").touch()
