"""`pit backfill`: one run per fire time in a range, each with its own scheduled time; resumed
by running it again; stopped by Ctrl-C with nothing lost."""

from __future__ import annotations

import datetime as dt
import json
import signal

import pytest

from tests.conftest import Pit, Workspace, wait_until

pytestmark = pytest.mark.e2e

DAG_KEYS = """
schedule = "0 6 * * *"
timezone = "Europe/Berlin"

[dag.params]
day = { type = "date", default = "{{ scheduled_date }}" }
"""
WORK = """
echo "day $PIT_PARAM_DAY at $PIT_SCHEDULED_TIME"
if [ -e "$PIT_WORKSPACE/fail-$PIT_PARAM_DAY" ]; then exit 3; fi
if [ -e "$PIT_WORKSPACE/hold-$PIT_PARAM_DAY" ]; then sleep 60; fi
"""
FIRES = ["2026-11-01T06:00:00+01:00", "2026-11-02T06:00:00+01:00", "2026-11-03T06:00:00+01:00"]


def daily(workspace: Workspace) -> None:
    workspace.shell_project("daily", {"work": WORK}, dag_keys=DAG_KEYS)


def runs(workspace: Workspace) -> list[dict[str, object]]:
    """The DAG's run records, their scheduled time as the fire times above write it."""
    folders = [r for r in workspace.run_dirs("daily") if (r / "run.json").exists()]
    records = [workspace.manifest(r) for r in folders]  # a folder just claimed has none yet
    for record in records:
        if record["scheduled_time"]:
            at = dt.datetime.fromisoformat(record["scheduled_time"])
            record["scheduled_time"] = at.isoformat()
    return records


def test_each_fire_runs_once_with_its_time_and_a_second_backfill_resumes(
    workspace: Workspace, pit: Pit
) -> None:
    daily(workspace)
    workspace.write("fail-2026-11-02", "")
    dry = pit("backfill", "daily", "--from", "2026-11-01", "--to", "2026-11-03", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert [line.split()[0] for line in dry.stdout.splitlines()] == FIRES
    assert runs(workspace) == []

    first = pit("backfill", "daily", "--from", "2026-11-01", "--to", "2026-11-03", "--json")
    assert first.returncode == 1, first.stderr
    made = json.loads(first.stdout[first.stdout.index("[\n") :])
    assert [(r["fire"], r["state"]) for r in made] == list(
        zip(FIRES, ["success", "failed", "success"], strict=True)
    )
    assert all(r["run_id"].endswith("0000.000_daily") for r in made)
    records = runs(workspace)
    assert {r["trigger"] for r in records} == {"backfill"}
    log = (workspace.root / "runs" / made[0]["run_id"] / "logs" / "work.log").read_text()
    assert f"day 2026-11-01 at {FIRES[0]}" in log

    (workspace.root / "fail-2026-11-02").unlink()
    plan = pit("backfill", "daily", "--from", "2026-11-01", "--to", "2026-11-03", "--dry-run")
    assert [line.split()[1] for line in plan.stdout.splitlines()] == ["done", "to", "done"]
    again = pit("backfill", "daily", "--from", "2026-11-01", "--to", "2026-11-03")
    assert again.returncode == 0, again.stderr
    assert "1 run to make" in again.stderr
    assert "(2 fire times have their runs)" in again.stderr
    states = sorted((str(r["scheduled_time"]), str(r["state"])) for r in runs(workspace))
    assert states == [
        ("2026-11-01T06:00:00+01:00", "success"),
        ("2026-11-02T06:00:00+01:00", "failed"),
        ("2026-11-02T06:00:00+01:00", "success"),  # beside the failed one, a ms later
        ("2026-11-03T06:00:00+01:00", "success"),
    ]
    done = pit("backfill", "daily", "--from", "2026-11-01", "--to", "2026-11-03")
    assert done.returncode == 0
    assert "all 3 fire times from 2026-11-01 to 2026-11-03 have their runs" in done.stdout


def test_ctrl_c_stops_the_run_going_and_starts_no_more(workspace: Workspace, pit: Pit) -> None:
    daily(workspace)
    workspace.write("hold-2026-11-02", "")
    backfill = pit.start("backfill", "daily", "--from", "2026-11-01", "--to", "2026-11-03")

    def holding() -> bool:
        return any(
            r["scheduled_time"] == FIRES[1] and r["state"] == "running" for r in runs(workspace)
        )

    wait_until(holding, what="the second day's run to start")
    backfill.process.send_signal(signal.SIGINT)
    assert backfill.wait() == 130, backfill.stdout() + backfill.stderr()
    assert "run the same command again to go on" in backfill.stderr()
    states = [(r["scheduled_time"], r["state"]) for r in runs(workspace)]
    assert states == [(FIRES[0], "success"), (FIRES[1], "cancelled")]

    (workspace.root / "hold-2026-11-02").unlink()
    resumed = pit("backfill", "daily", "--from", "2026-11-01", "--to", "2026-11-03")
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(r["scheduled_time"] for r in runs(workspace) if r["state"] == "success") == FIRES


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("nosuch", "--from", "2026-11-01", "--to", "2026-11-02"), "no DAG named 'nosuch'"),
        (("daily", "--from", "2026-11-05", "--to", "2026-11-02"), "is before --from"),
        (("daily", "--from", "yesterday", "--to", "2026-11-02"), "--from 'yesterday'"),
        (("daily", "--from", "2020-01-01", "--to", "2049-01-01"), "narrow the range"),
        (
            ("daily", "--from", "2026-11-01", "--to", "2026-11-02", "--param", "day=x"),
            "param 'day': 'x' is not a date",
        ),
    ],
)
def test_a_range_dag_or_param_that_does_not_fit_is_a_one_line_error(
    workspace: Workspace, pit: Pit, args: tuple[str, ...], error: str
) -> None:
    daily(workspace)
    result = pit("backfill", *args)
    assert result.returncode == 2
    assert error in result.stderr
    assert "Traceback" not in result.stderr
    assert runs(workspace) == []
