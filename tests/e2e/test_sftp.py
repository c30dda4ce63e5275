"""SFTP end to end against a real SFTP server on 127.0.0.1: the SDK's ftp_* functions in a task
(`pit run`), and `[dag.ftp_watch] protocol = "sftp"` under `pit serve`."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from tests.conftest import Pit, Workspace, wait_until
from tests.e2e.test_serve import finished, serve
from tests.sftpserver import SftpServer, sftp_server

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(tmp_path: Path) -> SftpServer:
    root = tmp_path / "remote"
    (root / "in").mkdir(parents=True)
    (root / "in" / "sales.csv").write_text("id\n1\n")
    with sftp_server(root) as running:
        yield running  # type: ignore[misc]


def write_secrets(workspace: Workspace, server: SftpServer) -> str:
    """The secrets file: the webhook token `serve` expects, and the SFTP server's secret."""
    fields = "\n".join(f"{k} = {json.dumps(v)}" for k, v in server.secret().items())
    return f'[global]\nhook_token = "hook-token-4711"\n\n[global.sftp_creds]\n{fields}\n'


def test_a_task_lists_and_downloads_over_sftp_without_the_password(
    workspace: Workspace, pit: Pit, server: SftpServer
) -> None:
    workspace.write("secrets.toml", write_secrets(workspace, server))
    workspace.config('secrets_dir = "secrets.toml"\n')
    workspace.project(
        "pull",
        f'[dag]\nname = "pull"\n[[tasks]]\nname = "get"\nscript = "get.py"\n'
        f'runner = "$ {sys.executable}"\n',
        {
            "get.py": "from pit_sdk import ftp_download, ftp_list\n"
            "print(ftp_list('sftp_creds', '/in', '*.csv'))\n"
            "print(ftp_download('sftp_creds', '/in/sales.csv'))\n"
        },
    )
    result = pit("run", "pull")
    assert result.returncode == 0, result.stdout + result.stderr
    run = workspace.only_run("pull")
    assert (run / "data" / "sales.csv").read_text() == "id\n1\n"
    assert "['sales.csv']" in (run / "logs" / "get.log").read_text()


def test_an_sftp_watch_runs_a_stable_file_once_and_archives_it(
    workspace: Workspace, pit: Pit, server: SftpServer
) -> None:
    workspace.shell_project(
        "sales",
        {"work": 'cat "$PIT_DATA_DIR/sales.csv"\n'},
        extra="""
        [dag.ftp_watch]
        protocol = "sftp"
        secret = "sftp_creds"
        directory = "/in"
        pattern = "*.csv"
        archive_dir = "/done"
        poll_interval = "1s"
        stable_seconds = 1
        """,
    )
    with serve(pit, workspace, secrets_text=write_secrets(workspace, server)) as running:
        wait_until(lambda: len(workspace.run_dirs("sales")) == 1, what="the file's run")
        (run,) = workspace.run_dirs("sales")
        wait_until(lambda: finished(workspace, run.name), what="the run to end")
        wait_until(lambda: (server.root / "done" / "sales.csv").exists(), what="the archive")
        running.signal(signal.SIGTERM)
        assert running.exit_code() == 0
    assert workspace.manifest(run)["state"] == "success"
    assert "id" in (run / "logs" / "work.log").read_text()
    assert not (server.root / "in" / "sales.csv").exists()
