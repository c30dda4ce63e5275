"""Catch-up under the real `pit serve`: the fires missed while it was down run once each,
oldest first, with their own scheduled time and run ids that are their fire times."""

from __future__ import annotations

import datetime as dt
import itertools
import signal

import pytest

from pit.messages.run import RunRecord
from pit.spec.states import RunState
from pit.store.rundir import claim_fire_dir, write_manifest
from tests.conftest import Pit, Workspace
from tests.e2e.test_serve import serve, wait_until

pytestmark = pytest.mark.e2e


def test_missed_fires_run_once_each_oldest_first(workspace: Workspace, pit: Pit) -> None:
    workspace.shell_project(
        "minutely",
        {"work": 'echo "fire $PIT_SCHEDULED_TIME"\n'},
        dag_keys='schedule = "* * * * *"\ntimezone = "UTC"\ncatchup = true\ncatchup_window = "1h"',
    )
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    last = now - dt.timedelta(minutes=4)
    # The last run pit made for a fire, four minutes ago: the minutes since were missed.
    paths = claim_fire_dir(workspace.root / "runs", "minutely", last)
    assert paths is not None
    write_manifest(
        paths,
        RunRecord(
            run_id=paths.run_id,
            dag="minutely",
            trigger="cron",
            scheduled_time=last,
            state=RunState.SUCCESS,
        ),
    )

    fires = [last + dt.timedelta(minutes=n) for n in (1, 2, 3, 4)]

    def ran() -> dict[dt.datetime, dict[str, str]]:
        records = [workspace.manifest(r) for r in workspace.run_dirs("minutely")]
        return {
            dt.datetime.fromisoformat(r["scheduled_time"]): r
            for r in records
            if r["scheduled_time"] and r["state"] == "success"
        }

    with serve(pit, workspace) as server:
        wait_until(lambda: set(fires) <= set(ran()), timeout=60, what="the missed fires to run")
        server.signal(signal.SIGTERM)
        assert server.exit_code() == 0

    records = [workspace.manifest(r) for r in workspace.run_dirs("minutely")]
    by_fire = ran()
    # the fires more than a minute late when pit serve started were caught up; the current
    # minute's (and any after) fired on schedule
    assert [by_fire[fire]["trigger"] for fire in fires[:2]] == ["catchup", "catchup"]
    assert all(by_fire[fire]["run_id"].endswith("00.000_minutely") for fire in fires)
    # each run ended before the next began (the DAG's overlap is skip), oldest first
    ordered = [by_fire[fire] for fire in fires]
    for before, after in itertools.pairwise(ordered):
        assert before["ended_at"] <= after["started_at"]
    log = (workspace.root / "runs" / ordered[0]["run_id"] / "logs" / "work.log").read_text()
    assert f"fire {fires[0].isoformat()}" in log
    # nothing ran twice
    scheduled = [r["scheduled_time"] for r in records if r["scheduled_time"]]
    assert len(scheduled) == len(set(scheduled))
