"""`pit status`: every DAG at a glance, from the run store."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.cli.test_imports import heavy_imports
from tests.conftest import Pit, Workspace

pytestmark = pytest.mark.e2e


def test_each_dag_with_its_schedule_triggers_last_run_and_success_rate(
    workspace: Workspace, pit: Pit
) -> None:
    workspace.shell_project(
        "nightly",
        {"load": '[ -e "$PIT_WORKSPACE/fail" ] && exit 1; echo ok\n'},
        dag_keys='schedule = "0 6 * * 1-5"\ntimezone = "Europe/Paris"',
    )
    workspace.shell_project("adhoc", {"work": "echo ok\n"})
    for fail in (False, True, False, False):
        if fail:
            workspace.write("fail", "")
        assert pit("run", "nightly").returncode == (1 if fail else 0)
        (workspace.root / "fail").unlink(missing_ok=True)

    result = pit("status", "--json")

    assert result.returncode == 0, result.stderr
    rows = {row["dag"]: row for row in json.loads(result.stdout)}
    nightly, adhoc = rows["nightly"], rows["adhoc"]
    assert nightly["schedule_in_words"] == "at 06:00 on Monday to Friday"
    assert nightly["next_run"].endswith(("+01:00", "+02:00"))  # Paris, winter or summer
    assert nightly["next_run"][11:16] == "06:00"
    assert nightly["triggers"] == ["cron"]
    assert nightly["last_run"]["state"] == "success"
    assert (nightly["success_rate"], nightly["runs_counted"]) == (0.75, 4)
    assert (adhoc["last_run"], adhoc["success_rate"], adhoc["triggers"]) == (None, None, [])

    table = pit("status").stdout.splitlines()
    assert table[0].split() == [
        "dag",
        "schedule",
        "next",
        "run",
        "triggers",
        "last",
        "run",
        "took",
        "success",
        "active",
    ]
    assert "at 06:00 on Monday to Friday" in table[2]
    assert "75% of 4" in table[2]


def test_a_run_going_on_is_active_and_one_whose_pit_died_is_not(
    workspace: Workspace, pit: Pit, wait_until
) -> None:
    workspace.shell_project("slow", {"wait": "sleep 30\n"})
    running = pit.start("run", "slow")  # the Pit fixture kills it if the test fails
    wait_until(lambda: workspace.running_task("slow", "wait"), what="the task to start")

    during = json.loads(pit("status", "--json").stdout)

    running.process.kill()  # kill -9: its guard settles the run
    running.process.wait()
    wait_until(
        lambda: json.loads(pit("status", "--json").stdout)[0]["active_runs"] == 0,
        what="the run to be settled",
    )
    assert during[0]["active_runs"] == 1
    last = json.loads(pit("status", "--json").stdout)[0]["last_run"]
    assert last["state"] == "failed"
    assert last["interrupted"] is True
    assert last["error"].startswith("interrupted by a crash: pit (pid ")
    assert "failed (interrupted)" in pit("status").stdout


def test_status_indexes_the_runs_of_a_workspace_without_a_store(
    workspace: Workspace, pit: Pit
) -> None:
    workspace.shell_project("etl", {"work": "echo ok\n"})
    assert pit("run", "etl").returncode == 0
    shutil.rmtree(workspace.root / ".pit")

    result = pit("status", "--json")

    assert result.returncode == 0
    assert "made the run store" in result.stderr
    assert json.loads(result.stdout)[0]["last_run"]["state"] == "success"


def test_a_pit_toml_is_read_again_only_when_it_changed(workspace: Workspace, pit: Pit) -> None:
    workspace.shell_project("etl", {"work": "echo ok\n"}, dag_keys='schedule = "0 6 * * *"')
    workspace.shell_project("gone", {"work": "echo ok\n"})
    assert pit("status").returncode == 0  # reads both pit.toml and keeps what it read

    unchanged = heavy_imports("-C", workspace.root, "status", modules={"pit.spec.dag"})
    workspace.shell_project("etl", {"work": "echo ok\n"}, dag_keys='schedule = "30 7 * * *"')
    shutil.rmtree(workspace.root / "projects" / "gone")
    rows = json.loads(pit("status", "--json").stdout)

    assert unchanged == set()  # no DAG parser imported: nothing to parse
    assert [(row["dag"], row["schedule"]) for row in rows] == [("etl", "30 7 * * *")]
