"""The supervisor's side of the executor: `pit serve` executes its runs in a second process.

One Python process has one core's worth of the GIL. Every run costs pit a few milliseconds of it
(its actors, its files, its process), and a burst of webhooks or a minute on which many cron
schedules fire would take it from the web listener and the triggers. So the supervisor decides
and the executor executes:

    pit serve (Supervisor)                         executor (python -m pit.cli.executor)
      ExecutorProcess  -- ExecutorSetup, Execute, CancelExecution -->  Executor
                       <----------------- RunEnded ------------------   └── execute_run per run

The two talk over a socket pair, one pickled message per length-prefixed frame (`frames.py`).
The executor logs every run and task state change itself (it writes to pit serve's stdout).
Nothing outlives pit:
when the supervisor's end of the socket closes (pit stopped, or died), the executor kills what it
still runs and exits; when the executor dies, the supervisor records its runs as failed and starts
a new one.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import subprocess
from collections.abc import Sequence

import attrs
import trio

from pit.actors.frames import FrameReader, encode
from pit.actors.process import kill_run_processes
from pit.clock import Clock
from pit.messages.executor import (
    CancelExecution,
    Execute,
    ExecutorSetup,
    ToExecutor,
)
from pit.messages.run import RunEnded, RunPlan
from pit.messages.trigger import SupervisorInbox
from pit.spec.problems import plural
from pit.store.rundir import RunPaths, settle_abandoned

log = logging.getLogger("pit.serve")

EXIT_WAIT = 10.0
"""Seconds an executor gets to stop its runs and exit once pit serve's end of the socket closes."""
RESTART_DELAY = 1.0
"""Seconds before an executor that died is replaced (a crash loop must not spin)."""


@attrs.define(kw_only=True)
class ExecutorProcess:
    """Keeps an executor process for the supervisor: sends it runs and cancels, and turns its
    reports into `RunEnded` in the supervisor's inbox. An executor that dies has its runs
    recorded as failed (run.json says why) and is replaced."""

    command: Sequence[str]
    """Starts an executor; `--channel <fd>` is appended."""
    setup: ExecutorSetup
    supervisor: trio.MemorySendChannel[SupervisorInbox]
    clock: Clock
    restart_delay: float = RESTART_DELAY
    _send: trio.MemorySendChannel[ToExecutor] = attrs.field(init=False)
    _commands: trio.MemoryReceiveChannel[ToExecutor] = attrs.field(init=False)
    restarts: int = attrs.field(init=False, default=0)
    """How many times the executor process ended unexpectedly (and was started again)."""
    _active: dict[str, tuple[RunPlan, RunPaths]] = attrs.field(init=False, factory=dict)
    pid: int | None = attrs.field(init=False, default=None)
    """The current executor process."""

    def __attrs_post_init__(self) -> None:
        # Unbounded: the supervisor never waits on its executor; a run's commands are few.
        self._send, self._commands = trio.open_memory_channel[ToExecutor](math.inf)

    def execute(self, request: RunPlan, paths: RunPaths) -> None:
        self._active[paths.run_id] = (request, paths)
        self._send.send_nowait(Execute(request=request, run_dir=paths.root))

    def cancel(self, run_id: str, *, kill: bool, by: str | None = None) -> None:
        if run_id in self._active:
            self._send.send_nowait(CancelExecution(run_id=run_id, kill=kill, by=by))

    def close(self) -> None:
        """Let the executor exit once it has been sent everything (call with no run active)."""
        self._send.close()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep an executor running until `close`."""
        task_status.started()
        while True:
            if await self._serve_one():
                return
            await trio.sleep(self.restart_delay)

    async def _serve_one(self) -> bool:
        """Start an executor and serve it until it ends; whether it ended because it was closed."""
        ours, theirs = socket.socketpair()
        with ours:
            with theirs:
                process = await trio.lowlevel.open_process(
                    [*self.command, "--channel", str(theirs.fileno())],
                    pass_fds=(theirs.fileno(),),
                    stdin=subprocess.DEVNULL,
                    # Not in the terminal's process group: Ctrl-C reaches pit serve, which decides.
                    start_new_session=True,
                )
            self.pid = process.pid
            log.info("executor process started (pid %d)", process.pid)
            closed = False
            try:
                stream = trio.SocketStream(trio.socket.from_stdlib_socket(ours))
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._read_reports, stream, nursery.cancel_scope)
                    try:
                        await stream.send_all(encode(self.setup))
                        async for command in self._commands:
                            await stream.send_all(encode(command))
                        closed = True
                        await stream.send_eof()
                    except trio.BrokenResourceError:
                        pass  # it died: the reader sees the end of its stream
            finally:
                ours.close()  # if we were cancelled: the executor stops its runs and exits
                code = await _reap(process)
        if closed and not self._active:
            return True
        self.restarts += 1
        log.error(
            "the executor process ended unexpectedly (exit code %s); %s failed with it",
            code,
            plural(len(self._active), "run"),
        )
        await self._fail_active(f"pit's executor process ended unexpectedly (exit code {code})")
        return closed

    async def _read_reports(self, stream: trio.SocketStream, scope: trio.CancelScope) -> None:
        reports = FrameReader.from_executor(stream)
        while (ended := await reports.receive()) is not None:
            del self._active[ended.run_id]
            await self.supervisor.send(ended)
        scope.cancel()

    async def _fail_active(self, error: str) -> None:
        # First, with no checkpoint between: the runs it had, and the commands queued for it
        # (each for one of those runs), so that a run sent after this is the next executor's.
        failed = list(self._active.values())
        self._active.clear()
        with contextlib.suppress(trio.WouldBlock, trio.EndOfChannel):
            while True:
                self._commands.receive_nowait()
        run_ids = {paths.run_id for _, paths in failed}
        killed = await trio.to_thread.run_sync(kill_run_processes, run_ids)
        if killed:
            log.error("killed %d process groups the executor's runs left behind", killed)
        for request, paths in failed:
            settled = await trio.to_thread.run_sync(
                settle_abandoned, paths, request, error, self.clock.now()
            )
            await self.supervisor.send(RunEnded(record=settled))


async def _reap(process: trio.Process) -> int:
    """Wait for an executor whose socket is closed to exit; kill it if it will not."""
    with trio.CancelScope(shield=True):
        with trio.move_on_after(EXIT_WAIT):
            await process.wait()
        if process.returncode is None:
            log.error("the executor process did not exit within %.0fs: killing it", EXIT_WAIT)
            process.kill()
        code = await process.wait()
    return code
