"""`[dag.dir_watch]` under the real `pit serve`: a file that stops growing in a local folder
starts one run with the file in its data/, and is archived once that run succeeded."""

from __future__ import annotations

import signal

import pytest

from tests.conftest import Pit, Workspace, wait_until
from tests.e2e.test_serve import finished, serve

pytestmark = pytest.mark.e2e


def test_a_dropped_file_runs_once_and_is_archived(workspace: Workspace, pit: Pit) -> None:
    inbox = workspace.root / "drop"
    inbox.mkdir()
    workspace.shell_project(
        "load",
        {"work": 'cat "$PIT_DATA_DIR"/*.csv\n'},
        extra="""
        [dag.dir_watch]
        path = "drop"
        pattern = "*.csv"
        archive_dir = "drop/done"
        poll_interval = "1s"
        stable_seconds = 1
        """,
    )
    (inbox / "ignored.txt").write_text("not a csv\n")
    with serve(pit, workspace) as server:
        (inbox / "sales.csv").write_text("id,amount\n1,9.5\n")
        wait_until(lambda: len(workspace.run_dirs("load")) == 1, what="the file's run")
        (run,) = workspace.run_dirs("load")
        wait_until(lambda: finished(workspace, run.name), what="the run to end")
        wait_until(lambda: (inbox / "done" / "sales.csv").exists(), what="the file archived")
        server.signal(signal.SIGTERM)
        assert server.exit_code() == 0
    record = workspace.manifest(run)
    assert (record["trigger"], record["state"]) == ("dir", "success")
    assert (run / "data" / "sales.csv").read_text() == "id,amount\n1,9.5\n"
    assert "1,9.5" in (run / "logs" / "work.log").read_text()
    assert not (inbox / "sales.csv").exists()
    assert (inbox / "ignored.txt").exists()
    assert len(workspace.run_dirs("load")) == 1


def test_a_file_arriving_is_seen_at_once_not_at_the_next_poll(
    workspace: Workspace, pit: Pit
) -> None:
    inbox = workspace.root / "drop"
    inbox.mkdir()
    workspace.shell_project(
        "load",
        {"work": 'ls "$PIT_DATA_DIR"\n'},
        extra="""
        [dag.dir_watch]
        path = "drop"
        poll_interval = "1h"
        stable_seconds = 0
        """,
    )
    with serve(pit, workspace) as server:
        wait_until(lambda: "serving 1 DAG" in server.output(), what="pit serve to start")
        partial = inbox.parent / "orders.csv.partial"
        partial.write_text("1\n")
        partial.rename(inbox / "orders.csv")  # inotify, not the hourly poll, sees it
        wait_until(lambda: len(workspace.run_dirs("load")) == 1, timeout=15, what="its run")
        (run,) = workspace.run_dirs("load")
        wait_until(lambda: finished(workspace, run.name), what="the run to end")
        server.signal(signal.SIGTERM)
        assert server.exit_code() == 0
    assert (run / "data" / "orders.csv").read_text() == "1\n"
