"""The FTP watch under the real supervisor, against a real FTP server on 127.0.0.1: stable files
start one run, are archived after it succeeds, and a failed file is not retried until it
changes, across a restart too."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
import trio

from pit.actors.supervisor import Supervisor
from pit.cli import executor
from pit.clock import SystemClock
from pit.messages.trigger import Stop
from pit.spec.secrets import parse_secrets
from pit.store.ledger import ledger_path, read_ledger

from .ftpserver import HOST, PASSWORD, USER, FtpServer, serve_ftp

pytestmark = pytest.mark.slow


def make_workspace(root: Path, server: FtpServer, task: str) -> None:
    project = root / "projects" / "drop"
    project.mkdir(parents=True)
    (project / "pit.toml").write_text(
        textwrap.dedent(f"""
        [dag]
        name = "drop"
        overlap = "skip"

        [dag.ftp_watch]
        secret = "ftp"
        port = {server.port}
        directory = "/incoming"
        pattern = "sales_*.csv"
        archive_dir = "/archive"
        poll_interval = "100ms"
        stable_seconds = 0

        [[tasks]]
        name = "ingest"
        script = "ingest.sh"
    """)
    )
    (project / "ingest.sh").write_text(task)


def secrets_for(server: FtpServer):
    secrets, problems = parse_secrets(
        f'[global.ftp]\nhost = "{HOST}"\nuser = "{USER}"\npassword = "{PASSWORD}"\n'
        f'port = "{server.port}"\n',
        "secrets.toml",
    )
    assert problems == []
    return secrets


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "ftp"
    (home / "incoming").mkdir(parents=True)
    (home / "incoming" / "sales_1.csv").write_text("a,1\n")
    (home / "incoming" / "sales_2.csv").write_text("b,2\n")
    (home / "incoming" / "other.txt").write_text("not for us\n")
    return home


def runs(root: Path) -> list[dict[str, object]]:
    folder = root / "runs"
    if not folder.is_dir():
        return []
    return [
        json.loads((r / "run.json").read_text())
        for r in sorted(folder.iterdir())
        if (r / "run.json").is_file()
    ]


async def serve_for(
    root: Path, server: FtpServer, seconds: float, *, shutdown_grace: float = 5
) -> None:
    """pit serve for `seconds`, then stopped; runs get `shutdown_grace` to finish."""
    supervisor = Supervisor(
        root=root,
        secrets=secrets_for(server),
        clock=SystemClock(),
        env=os.environ,
        executor=executor.COMMAND,
        shutdown_grace=shutdown_grace,
    )
    async with trio.open_nursery() as nursery:
        handle = await nursery.start(supervisor.run)
        await trio.sleep(seconds)
        await handle.inbox.send(Stop())


async def test_stable_files_start_one_run_and_are_archived(tmp_path: Path, home: Path) -> None:
    root = tmp_path / "ws"
    with serve_ftp(home) as server:
        make_workspace(root, server, 'cat "$PIT_DATA_DIR"/sales_*.csv > "$PIT_DATA_DIR/all"\n')
        await serve_for(root, server, 2.0)
    (run,) = runs(root)
    assert run["state"] == "success"
    assert run["trigger"] == "ftp"
    assert sorted(p.name for p in (home / "archive").iterdir()) == ["sales_1.csv", "sales_2.csv"]
    assert sorted(p.name for p in (home / "incoming").iterdir()) == ["other.txt"]
    data = root / "runs" / str(run["run_id"]) / "data"
    assert (data / "all").read_text() == "a,1\nb,2\n"
    ledger = read_ledger(ledger_path(root, "drop"))
    assert {e.state for e in ledger.values()} == {"done"}


async def test_a_failed_file_is_not_retried_until_it_changes_even_after_a_restart(
    tmp_path: Path, home: Path
) -> None:
    root = tmp_path / "ws"
    (home / "incoming" / "sales_2.csv").unlink()
    with serve_ftp(home) as server:
        make_workspace(root, server, "exit 3\n")
        await serve_for(root, server, 1.5)
        assert [r["state"] for r in runs(root)] == ["failed"]
        assert (home / "incoming" / "sales_1.csv").exists()  # kept where it was
        await serve_for(root, server, 1.0)  # a restart: the ledger remembers the failure
        assert len(runs(root)) == 1
        (home / "incoming" / "sales_1.csv").write_text("a,1\nfixed\n")  # it changes: run again
        await serve_for(root, server, 1.5)
    assert [r["state"] for r in runs(root)] == ["failed", "failed"]


async def test_files_of_a_run_cut_short_by_a_stop_run_again_after_a_restart(
    tmp_path: Path, home: Path
) -> None:
    root = tmp_path / "ws"
    marker = tmp_path / "second-time"
    # The first run sleeps past the shutdown grace; the second (after the restart) succeeds.
    script = f"[ -e {marker} ] && exit 0\ntouch {marker}\nsleep 300\n"
    with serve_ftp(home) as server:
        make_workspace(root, server, script)
        await serve_for(root, server, 1.5, shutdown_grace=0.1)  # too little for the run
        assert [r["state"] for r in runs(root)] == ["cancelled"]
        await serve_for(root, server, 2.0)

    assert [r["state"] for r in runs(root)] == ["cancelled", "success"]
    assert sorted(p.name for p in (home / "archive").iterdir()) == ["sales_1.csv", "sales_2.csv"]
    assert {e.state for e in read_ledger(ledger_path(root, "drop")).values()} == {"done"}
    assert not (root / ".pit" / "ftp" / "drop.staging").exists() or not any(
        (root / ".pit" / "ftp" / "drop.staging").iterdir()
    )


async def test_a_run_that_succeeded_unseen_is_archived_at_the_next_start(
    tmp_path: Path, home: Path
) -> None:
    """The watch was stopped before its run ended; the run succeeded: the restart archives its
    files instead of leaving them in /incoming for ever."""
    root = tmp_path / "ws"
    run_id = "20261202_120000.000_drop"
    (root / "runs" / run_id).mkdir(parents=True)
    (root / "runs" / run_id / "run.json").write_text(
        json.dumps(
            {
                "run_id": run_id,
                "dag": "drop",
                "trigger": "ftp",
                "state": "success",
                "started_at": None,
                "ended_at": None,
                "tasks": [],
            }
        )
    )
    with serve_ftp(home) as server:
        make_workspace(root, server, "exit 3\n")  # would fail, were the files run again
        ledger = ledger_path(root, "drop")
        ledger.parent.mkdir(parents=True)
        entries = {}
        for name in ("sales_1.csv", "sales_2.csv"):
            stat = (home / "incoming" / name).stat()
            entries[f"/incoming/{name}"] = {
                "size": stat.st_size,
                "modified": None,
                "state": "running",
                "run_id": run_id,
            }
        ledger.write_text(json.dumps(entries))
        await serve_for(root, server, 1.0)

    assert sorted(p.name for p in (home / "archive").iterdir()) == ["sales_1.csv", "sales_2.csv"]
    assert len(runs(root)) == 1  # no new run


async def test_a_damaged_ledger_is_reported_set_aside_and_rebuilt(
    tmp_path: Path, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "ws"
    with serve_ftp(home) as server:
        make_workspace(root, server, "exit 0\n")
        ledger = ledger_path(root, "drop")
        ledger.parent.mkdir(parents=True)
        ledger.write_text('{"/incoming/sales_1.csv": {"size": "x"')
        await serve_for(root, server, 2.0)

    assert "FTP ledger was unreadable" in caplog.text
    assert (ledger.parent / "drop.json.damaged").is_file()
    assert [r["state"] for r in runs(root)] == ["success"]
    assert {e.state for e in read_ledger(ledger).values()} == {"done"}
