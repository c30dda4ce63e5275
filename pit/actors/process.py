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
import io
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, BinaryIO, Protocol

import attrs
import trio

from pit.actors.masking import Masker
from pit.actors.orphans import forget_child, register_child

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

_F_SETPIPE_SZ = 1031  # Linux; bigger pipes mean fewer wake-ups on chatty tasks
_PIPE_SIZE = 1 << 20
_READ_SIZE = 1 << 20
_LEFTOVER_OUTPUT_WAIT = 5.0
"""Seconds to wait for the output pipe to close once the group and its escapees are dead (a
process that left the group and the run's environment may still hold it)."""


class TaskLog(io.FileIO):
    """A task's log file (unbuffered: `pit logs -f` sees output as it comes) whose writes
    never raise: on a full disk the output is dropped, not the run. `failed` tells."""

    failed = False

    def write(self, data: ReadableBuffer, /) -> int:
        try:
            return super().write(data)
        except OSError:
            self.failed = True
            return memoryview(data).nbytes


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


def kill_run_processes(run_ids: set[str]) -> int:
    """SIGKILL the process group of every process of this user whose environment names one of
    `run_ids` (PIT_RUN_ID, which each task and whatever it starts inherits); how many groups.

    For the tasks of an executor that died: nothing else knows their process groups any more.
    Blocking (it reads /proc): call it through a worker thread."""
    wanted = {f"PIT_RUN_ID={run_id}".encode() for run_id in run_ids}
    groups = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as environ:
                if wanted.isdisjoint(environ.read().split(b"\0")):
                    continue
            groups.add(os.getpgid(int(entry.name)))
        except (OSError, ValueError):  # gone meanwhile, or another user's
            continue
    for group in groups - {os.getpgrp()}:
        signal_group(group, signal.SIGKILL)
    return len(groups)


def signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


@attrs.define
class GroupProcess:
    """A started task process, leader of its own process group."""

    popen: subprocess.Popen[bytes]
    pidfd: int | None
    """A pidfd of the process: readable once it has exited, so trio can wait on it. None where
    the kernel has no pidfd_open (before Linux 5.3, as RHEL 8's 4.18): a thread waits then."""
    output: trio.lowlevel.FdStream | None
    """The read end of its stdout/stderr pipe, when output is piped through pit."""

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    async def wait(self) -> int:
        if self.popen.returncode is not None:
            return self.popen.returncode
        if self.pidfd is None:
            return await trio.to_thread.run_sync(self.popen.wait, abandon_on_cancel=True)
        await trio.lowlevel.wait_readable(self.pidfd)
        return self.popen.wait()  # the pidfd said it exited: this reaps without blocking

    def close(self) -> None:
        if self.pidfd is not None:
            trio.lowlevel.notify_closing(self.pidfd)
            os.close(self.pidfd)
        forget_child(self.pid)


def spawn_group(
    argv: tuple[str, ...], *, cwd: str, env: Mapping[str, str], log: BinaryIO, pipe: bool
) -> GroupProcess:
    """Start `argv` in a new session (so a new process group), its stdout and stderr going to
    `log`, or to a pipe when `pipe` is set.

    Blocking, but only until the child has exec'd: CPython uses vfork here.
    """
    if not pipe:
        popen, pidfd = start_group(argv, cwd=cwd, env=env, output=log)
        return GroupProcess(popen=popen, pidfd=pidfd, output=None)
    read_end, write_end = output_pipe()
    try:
        popen, pidfd = start_group(argv, cwd=cwd, env=env, output=write_end)
    except OSError:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    return GroupProcess(popen=popen, pidfd=pidfd, output=trio.lowlevel.FdStream(read_end))


def output_pipe() -> tuple[int, int]:
    """A pipe for a task's output (its read end, its write end), as large as the system
    lets it be: a task that writes in bursts is not held up by a reader a moment behind."""
    read_end, write_end = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(read_end, _F_SETPIPE_SZ, _PIPE_SIZE)
    return read_end, write_end


def start_group(
    argv: tuple[str, ...], *, cwd: str, env: Mapping[str, str], output: int | BinaryIO
) -> tuple[subprocess.Popen[bytes], int | None]:
    """Start `argv` in a new session, its stdout and stderr to `output`: the process, and a
    pidfd of it (None on kernels without). Registered as this process's own child (never
    reaped as an orphan; `forget_child` once waited for). Blocking until the child has
    exec'd."""
    popen = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    register_child(popen.pid)
    try:
        return popen, _pidfd(popen.pid)
    except OSError:  # out of file descriptors: the process must not run on unwatched
        os.killpg(popen.pid, signal.SIGKILL)
        popen.wait()
        forget_child(popen.pid)
        raise


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except OSError as exc:
        if exc.errno == errno.ENOSYS:  # an older kernel: `GroupProcess.wait` uses a thread
            return None
        raise


class Transform(Protocol):
    """Turns a stream of output into another (dbt's JSON log into readable lines)."""

    def feed(self, chunk: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


async def pump_output(
    process: GroupProcess,
    log: BinaryIO | None,
    forward: Callable[[bytes], Awaitable[None]] | None,
    masker: Masker | None,
    transform: Transform | None = None,
) -> None:
    """Copy the process's piped output to `log` (and `forward`) until every writer closed it,
    turned by `transform` when given, then with secret values masked when a `masker` is. No
    `log`: forwarded only."""
    stream = process.output
    assert stream is not None

    async def emit(data: bytes) -> None:
        if data:
            # A write of one chunk to a local file lands in the page cache in microseconds; a
            # thread hop per chunk would cost more than it saves.
            if log is not None:
                log.write(data)
            if forward is not None:
                await forward(data)

    async def take(data: bytes) -> None:
        if transform is not None:
            data = transform.feed(data)
        await emit(masker.feed(data) if masker else data)

    async with stream:
        while chunk := await stream.receive_some(_READ_SIZE):
            await take(bytes(chunk))
        if transform is not None:
            last = transform.flush()
            await emit(masker.feed(last) if masker else last)
        if masker is not None:
            await emit(masker.flush())


async def wait_for_output(done: trio.Event) -> None:
    """Wait a bounded time for the output pump to finish after the process group is gone."""
    with trio.move_on_after(_LEFTOVER_OUTPUT_WAIT):
        await done.wait()


async def kill_group(process: GroupProcess) -> None:
    """SIGKILL the whole group (the main process and anything it left behind), then reap.

    The group outlives its leader while anything it started is left; its id is not reused
    until the last member is gone, so the signal reaches only the task's processes."""
    signal_group(process.pid, signal.SIGKILL)
    if process.returncode is None:
        with trio.CancelScope(shield=True):
            await process.wait()
