"""Ctrl-C (and SIGTERM) on `pit run`: the run is recorded as cancelled, pit exits 130, and no
process of the task outlives it, including a grandchild the task left in the background."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EXIT_INTERRUPTED = 130


def long_task(pids: Path, *, ignore_sigterm: bool = False) -> str:
    """A bash task that starts `sleep 300 &` and `sleep 60`, writing every pid into `pids`/."""
    lines = [
        f"echo $$ > {pids}/task.pid",
        "sleep 300 &",
        f"echo $! > {pids}/grandchild.pid",
        "sleep 60 &",
        "child=$!",
        f"echo $child > {pids}/child.pid",
        "wait $child",
    ]
    if ignore_sigterm:
        lines.insert(0, "trap '' TERM  # ignore SIGTERM (and so do the sleeps started below)")
    return "\n".join(lines) + "\n"


def state_of(pid: int) -> str | None:
    """The process's state letter (R, S, Z, ...), or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rpartition(")")[2].split()[0]


def living(pids: list[int]) -> list[int]:
    """Those of `pids` that still run (a zombie waiting to be reaped is dead enough)."""
    return [pid for pid in pids if state_of(pid) not in (None, "Z")]


def living_in_group(pgid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


class TaskPids:
    """The pids a `long_task` wrote; kills (only) those still alive when the test ends."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir()

    def written(self) -> bool:
        names = ("task.pid", "grandchild.pid", "child.pid")
        return all((self.folder / n).is_file() and (self.folder / n).read_text() for n in names)

    def all(self) -> list[int]:
        files = sorted(self.folder.glob("*.pid"))
        return [int(text) for f in files if (text := f.read_text().strip())]

    @property
    def task(self) -> int:
        return int((self.folder / "task.pid").read_text())

    def kill_survivors(self) -> None:
        for pid in living(self.all()):
            with contextlib.suppress(OSError):  # it may end meanwhile
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"sleep" in cmdline or b"bash" in cmdline:  # still ours, not a reused pid
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def task_pids(tmp_path):
    pids = TaskPids(tmp_path / "pids")
    yield pids
    pids.kill_survivors()


@pytest.fixture
def interrupt_me(workspace, task_pids):
    """Writes DAG `interrupt_me`: `long` (the long task), then `after`, pending until it ends."""

    def write(*, ignore_sigterm: bool = False) -> None:
        workspace.shell_project(
            "interrupt_me",
            {"long": long_task(task_pids.folder, ignore_sigterm=ignore_sigterm), "after": "true\n"},
            depends_on={"after": ["long"]},
        )

    return write


def assert_cancelled_run(workspace) -> None:
    manifest = workspace.manifest(workspace.only_run("interrupt_me"))
    assert manifest["state"] == "cancelled"
    tasks = {t["name"]: t for t in manifest["tasks"]}
    assert tasks["long"]["state"] == "failed"
    assert tasks["long"]["error"] == "cancelled"
    assert tasks["after"]["state"] == "skipped"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_run_and_every_task_process(
    workspace, pit, task_pids, interrupt_me, wait_until, signum
):
    interrupt_me()
    run = pit.start("run", "interrupt_me")
    wait_until(task_pids.written, what="the task to start its processes")
    assert living(task_pids.all()) == task_pids.all()

    os.kill(run.pid, signum)

    assert run.wait(timeout=30) == EXIT_INTERRUPTED, run.stdout() + run.stderr()
    assert_cancelled_run(workspace)
    wait_until(lambda: not living(task_pids.all()), timeout=10, what="the task's processes to end")
    wait_until(lambda: not living_in_group(task_pids.task), timeout=10, what="its group to end")
    assert "stopping" in run.stderr()


def test_a_second_ctrl_c_kills_a_task_that_ignores_sigterm(
    workspace, pit, task_pids, interrupt_me, wait_until
):
    workspace.config('stop_grace = "30s"\n')
    interrupt_me(ignore_sigterm=True)
    run = pit.start("run", "interrupt_me")
    wait_until(task_pids.written, what="the task to start its processes")

    os.kill(run.pid, signal.SIGINT)
    wait_until(lambda: "stopping" in run.stderr(), what="pit to take the first Ctrl-C")
    # The task shrugs SIGTERM off, so pit waits out its 30 s grace...
    with pytest.raises(subprocess.TimeoutExpired):
        run.wait(timeout=1)
    assert living(task_pids.all()) == task_pids.all()

    os.kill(run.pid, signal.SIGINT)

    # ...until the second Ctrl-C, which kills at once: well within the grace period.
    assert run.wait(timeout=20) == EXIT_INTERRUPTED, run.stdout() + run.stderr()
    assert_cancelled_run(workspace)
    wait_until(lambda: not living(task_pids.all()), timeout=10, what="the task's processes to end")
    wait_until(lambda: not living_in_group(task_pids.task), timeout=10, what="its group to end")
    assert "killing" in run.stderr()


def test_sigterm_delivered_twice_at_once_is_one_stop(
    workspace, pit, task_pids, interrupt_me, wait_until
):
    """`kill -TERM -<pgid>` under `uv run` reaches pit twice within milliseconds: the grace
    period must still hold."""
    workspace.config('stop_grace = "30s"\n')
    interrupt_me(ignore_sigterm=True)
    run = pit.start("run", "interrupt_me")
    wait_until(task_pids.written, what="the task to start its processes")

    os.kill(run.pid, signal.SIGTERM)
    os.kill(run.pid, signal.SIGTERM)

    with pytest.raises(subprocess.TimeoutExpired):
        run.wait(timeout=1.5)
    assert living(task_pids.all()) == task_pids.all(), "the second SIGTERM killed the task"
    assert "killing" not in run.stderr()
    os.kill(run.pid, signal.SIGINT)  # a real second stop, well after the first
    assert run.wait(timeout=20) == EXIT_INTERRUPTED
