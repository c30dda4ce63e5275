"""A worker's runner, in a process of its own as Dask would run it (`run_encoded`), against a
real hub: what it does when the pit process that sent its attempt goes away."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from pit.actors.peers import Member
from pit.remote.hub import Hub, Lost
from pit.remote.tarballs import pack_project
from pit.remote.wire import Kind, RemoteAttempt, fields

pytestmark = pytest.mark.slow  # a real process and sockets

RUNNER = (
    "import json, sys\n"
    "from pit.remote.worker import run_encoded\n"
    "print(json.dumps(run_encoded(sys.stdin.buffer.read())), flush=True)\n"
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_an_attempt_whose_pit_goes_away_is_killed(tmp_path: Path) -> None:
    """Nobody could see it end: the runner kills its process at once, and says so to Dask."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "pit.toml").write_text("[dag]\nname = 'etl'\n")
    digest, tarball = pack_project(project)
    hub = Hub("127.0.0.1")
    key = "run-1/load/1"
    with trio.fail_after(60), contextlib.ExitStack() as stack:  # a hang fails the test
        async with trio.open_nursery() as serving:
            await serving.start(hub.run)
            with hub.expect(key, Member("run-1", "load")) as link:
                link.tarball = tarball
                attempt = RemoteAttempt(
                    key=key,
                    token=link.token,
                    hub=hub.address,
                    snapshot=digest,
                    argv=("sleep", "300"),
                    cwd=".",
                    env={"PIT_RUN_ID": "run-1", "PIT_TASK_NAME": "load"},
                    timeout=None,
                    grace=5.0,
                )
                env = {**os.environ, "TMPDIR": str(tmp_path)}  # its cache, in the test's folder
                runner = await trio.lowlevel.open_process(
                    [sys.executable, "-c", RUNNER],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    env=env,
                )
                assert runner.stdin is not None
                assert runner.stdout is not None
                stack.callback(runner.kill)  # a failing test leaves nothing behind
                await runner.stdin.send_all(attempt.encode())
                await runner.stdin.aclose()
                async for report in link.events:
                    assert not isinstance(report, Lost), report
                    if report[0] is Kind.STARTED:
                        pid = int(fields(report[1])["pid"])
                        break
                assert alive(pid)
                serving.cancel_scope.cancel()  # pit goes: the hub and its connections close

        said = b""
        while chunk := await runner.stdout.receive_some():
            said += chunk
        await runner.wait()
    assert runner.returncode == 0
    assert not alive(pid)  # killed, and reaped
    ended = json.loads(said)  # what Dask keeps: pit could not be told
    assert ended["stopped"] == "lost its connection to pit"
    assert ended["returncode"] == -9
