"""A task attempt as a process group: start it, feed its output to a log, and stop it for sure.

Every attempt runs in a session of its own (`start_new_session`), so its process group holds the
task's whole tree. Stopping escalates: SIGTERM to the group, a grace period, then SIGKILL. When the
task's main process ends, whatever it left behind in its group is killed: no process of a task
outlives its task.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable
from typing import BinaryIO

import trio

_F_SETPIPE_SZ = 1031  # Linux; bigger pipes mean fewer wake-ups on chatty tasks
_PIPE_SIZE = 1 << 20
_READ_SIZE = 1 << 20
_LEFTOVER_OUTPUT_WAIT = 5.0
"""Seconds to wait for the output pipe to close once the group is dead (a process that left the
group with setsid may still hold it)."""


def signal_group(pid: int, signum: int) -> bool:
    """Send `signum` to the process group led by `pid`; False if no process of it is left."""
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        return False
    except PermissionError as exc:  # a member changed its uid: nothing more we can do
        if exc.errno != errno.EPERM:
            raise
    return True


def signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


async def open_group_process(
    argv: tuple[str, ...], *, cwd: str, env: dict[str, str], log: BinaryIO, pipe: bool
) -> trio.Process:
    """Start `argv` in a new process group, its stdout and stderr going to `log` or to a pipe."""
    process = await trio.lowlevel.open_process(
        list(argv),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if pipe else log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    if isinstance(process.stdout, trio.lowlevel.FdStream):
        with contextlib.suppress(OSError):
            fcntl.fcntl(process.stdout.fileno(), _F_SETPIPE_SZ, _PIPE_SIZE)
    return process


async def pump_output(
    process: trio.Process, log: BinaryIO, forward: Callable[[bytes], Awaitable[None]] | None
) -> None:
    """Copy the process's piped output to `log` (and `forward`) until every writer closed it."""
    stream = process.stdout
    assert stream is not None
    async with stream:
        while chunk := await stream.receive_some(_READ_SIZE):
            # A write of one chunk to a local file lands in the page cache in microseconds; a
            # thread hop per chunk would cost more than it saves.
            log.write(chunk)
            if forward is not None:
                await forward(bytes(chunk))


async def wait_for_output(done: trio.Event) -> None:
    """Wait a bounded time for the output pump to finish after the process group is gone."""
    with trio.move_on_after(_LEFTOVER_OUTPUT_WAIT):
        await done.wait()


async def terminate_group(process: trio.Process, grace: trio.CancelScope) -> None:
    """SIGTERM the group and wait within `grace` (a scope whose deadline is the grace period, and
    which a kill cancels early); then SIGKILL whatever is left and reap the process."""
    if process.returncode is None:
        signal_group(process.pid, signal.SIGTERM)
        with grace:
            await process.wait()
    await kill_group(process)


async def kill_group(process: trio.Process) -> None:
    """SIGKILL the whole group (the main process and anything it left behind), then reap."""
    signal_group(process.pid, signal.SIGKILL)
    with trio.CancelScope(shield=True):
        await process.wait()
