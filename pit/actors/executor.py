"""The executor: `pit serve` executes its runs in a second process.

One Python process has one core's worth of the GIL. Every run costs pit a few milliseconds of it
(its actors, its files, its process), and a burst of webhooks or a minute on which many cron
schedules fire would take it from the web listener and the triggers. So the supervisor decides
and the executor executes:

    pit serve (Supervisor)                         executor (python -m pit.cli.executor)
      ExecutorProcess  -- ExecutorSetup, Execute, CancelExecution -->  Executor
                       <-------------- ExecutionEnded ---------------   └── execute_run per run

The two talk over a socket pair, one pickled message per length-prefixed frame. The executor logs
every run and task state change itself (it writes to pit serve's stdout). Nothing outlives pit:
when the supervisor's end of the socket closes (pit stopped, or died), the executor kills what it
still runs and exits; when the executor dies, the supervisor records its runs as failed and starts
a new one.
"""

from __future__ import annotations

import contextlib
import logging
import math
import pickle
import socket
import struct
import subprocess
from collections.abc import Sequence
from typing import Any, assert_never

import attrs
import trio

from pit.actors.broker import SocketFolder
from pit.actors.execute import StartedRun, execute_run
from pit.actors.run import RunHandle
from pit.clock import Clock
from pit.errors import RunError
from pit.messages.executor import (
    CancelExecution,
    Execute,
    ExecutionEnded,
    ExecutorSetup,
    ToExecutor,
)
from pit.messages.run import CancelRun, RunEvent, RunFinished, RunRequest, RunStarted, TaskUpdated
from pit.messages.task import OutputLines, TaskOutput
from pit.messages.trigger import RunEnded, SupervisorInbox
from pit.spec.states import RunState, TaskState
from pit.store.rundir import RunPaths, settle_abandoned

log = logging.getLogger("pit.serve")

_FRAME = struct.Struct(">I")
EXIT_WAIT = 10.0
"""Seconds an executor gets to stop its runs and exit once pit serve's end of the socket closes."""
RESTART_DELAY = 1.0
"""Seconds before an executor that died is replaced (a crash loop must not spin)."""


def encode(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _FRAME.pack(len(data)) + data


class Frames:
    """Messages read from a stream of frames; None at the end of the stream."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def receive(self) -> Any:
        while True:
            if len(self._buffer) >= _FRAME.size:
                (size,) = _FRAME.unpack_from(self._buffer)
                end = _FRAME.size + size
                if len(self._buffer) >= end:
                    message = pickle.loads(self._buffer[_FRAME.size : end])
                    del self._buffer[:end]
                    return message
            chunk = await self._stream.receive_some(65536)
            if not chunk:
                return None
            self._buffer += chunk


# --- the supervisor's side ---------------------------------------------------------------------


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
    _active: dict[str, tuple[RunRequest, RunPaths]] = attrs.field(init=False, factory=dict)
    pid: int | None = attrs.field(init=False, default=None)
    """The current executor process."""

    def __attrs_post_init__(self) -> None:
        # Unbounded: the supervisor never waits on its executor; a run's commands are few.
        self._send, self._commands = trio.open_memory_channel[ToExecutor](math.inf)

    def execute(self, request: RunRequest, paths: RunPaths) -> None:
        self._active[paths.run_id] = (request, paths)
        self._send.send_nowait(Execute(request=request, run_dir=paths.root))

    def cancel(self, run_id: str, *, kill: bool) -> None:
        if run_id in self._active:
            self._send.send_nowait(CancelExecution(run_id=run_id, kill=kill))

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
        log.error(
            "the executor process ended unexpectedly (exit code %s); %d runs failed with it",
            code,
            len(self._active),
        )
        await self._fail_active(f"pit's executor process ended unexpectedly (exit code {code})")
        return closed

    async def _read_reports(self, stream: trio.SocketStream, scope: trio.CancelScope) -> None:
        frames = Frames(stream)
        while (report := await frames.receive()) is not None:
            assert isinstance(report, ExecutionEnded), f"unexpected report {report!r}"
            request, _ = self._active.pop(report.run_id)
            await self.supervisor.send(
                RunEnded(run_id=report.run_id, dag=request.dag.name, state=report.state)
            )
        scope.cancel()

    async def _fail_active(self, error: str) -> None:
        # First, with no checkpoint between: the runs it had, and the commands queued for it
        # (each for one of those runs), so that a run sent after this is the next executor's.
        failed = list(self._active.values())
        self._active.clear()
        with contextlib.suppress(trio.WouldBlock, trio.EndOfChannel):
            while True:
                self._commands.receive_nowait()
        for request, paths in failed:
            await trio.to_thread.run_sync(settle_abandoned, paths, request, error, self.clock.now())
            await self.supervisor.send(
                RunEnded(run_id=paths.run_id, dag=request.dag.name, state=RunState.FAILED)
            )


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


# --- the executor's side -----------------------------------------------------------------------


@attrs.define(kw_only=True)
class Executor:
    """Executes the runs the supervisor sends until the supervisor's end of `channel` closes;
    then kills whatever is still running (nothing outlives pit) and returns."""

    channel: trio.SocketStream
    clock: Clock
    _setup: ExecutorSetup = attrs.field(init=False)
    _runs: dict[str, RunHandle | None] = attrs.field(init=False, factory=dict)
    """Run id -> its handle once it can take commands (None while its snapshot is taken)."""
    _cancels: dict[str, bool] = attrs.field(init=False, factory=dict)
    """Cancels (kill or not) for runs not started yet."""
    _services: trio.Nursery = attrs.field(init=False)

    async def run(self) -> None:
        frames = Frames(self.channel)
        setup = await frames.receive()
        if setup is None:
            return  # the supervisor went away before it said anything
        if not isinstance(setup, ExecutorSetup):
            raise RuntimeError(f"an executor must be set up first, not sent {setup!r}")
        self._setup = setup
        reports, to_send = trio.open_memory_channel[ExecutionEnded](math.inf)
        events, to_log = trio.open_memory_channel[RunEvent](math.inf)
        with SocketFolder.create() as sockets:
            async with trio.open_nursery() as services:
                self._services = services
                services.start_soon(self._send_reports, to_send)
                services.start_soon(log_events, to_log)
                async with reports, events, trio.open_nursery() as runs:
                    while (message := await frames.receive()) is not None:
                        match message:
                            case Execute():
                                runs.start_soon(
                                    self._execute, message, sockets, reports.clone(), events.clone()
                                )
                            case CancelExecution(run_id=run_id, kill=kill):
                                self._cancel(run_id, kill=kill)
                            case ExecutorSetup():
                                raise RuntimeError("an executor is set up once")
                            case _:
                                assert_never(message)
                    # The supervisor is gone (or done, and then nothing is running).
                    for run_id in list(self._runs):
                        self._cancel(run_id, kill=True)

    def _cancel(self, run_id: str, *, kill: bool) -> None:
        handle = self._runs.get(run_id)
        if handle is None:
            if run_id in self._runs:  # not started yet: stopped as soon as it starts
                self._cancels[run_id] = kill or self._cancels.get(run_id, False)
            return
        # A run that ended meanwhile has closed its inbox; its report is on its way.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            handle.inbox.send_nowait(CancelRun(kill=kill))  # a run's inbox is unbounded

    def _started(self, run_id: str, started: StartedRun) -> None:
        self._runs[run_id] = started.handle
        kill = self._cancels.pop(run_id, None)
        if kill is not None:
            self._cancel(run_id, kill=kill)

    async def _execute(
        self,
        message: Execute,
        sockets: SocketFolder,
        reports: trio.MemorySendChannel[ExecutionEnded],
        events: trio.MemorySendChannel[RunEvent],
    ) -> None:
        paths = RunPaths(root=message.run_dir)
        self._runs[paths.run_id] = None
        output: trio.MemorySendChannel[TaskOutput] | None = None
        if self._setup.stream_output:
            output, lines = trio.open_memory_channel[TaskOutput](math.inf)
            self._services.start_soon(log_output, paths.run_id, lines)
        state = RunState.FAILED
        # Closed here too (the run actor closes them when it ends): a run that failed to start
        # must not hold the log open.
        with reports, events, output or contextlib.nullcontext():
            try:
                record = await execute_run(
                    message.request,
                    clock=self.clock,
                    env=self._setup.env,
                    secrets=self._setup.secrets,
                    paths=paths,
                    sockets=sockets,
                    observers=(events,),
                    output=output,
                    task_status=_Started(self, paths.run_id),
                )
                state = record.state
            except RunError as exc:  # the run could not start (its snapshot failed): not pit
                log.error("%s: could not start: %s", paths.run_id, exc)
            finally:
                del self._runs[paths.run_id]
                self._cancels.pop(paths.run_id, None)
            reports.send_nowait(ExecutionEnded(run_id=paths.run_id, state=state))

    async def _send_reports(self, reports: trio.MemoryReceiveChannel[ExecutionEnded]) -> None:
        async with reports:
            async for report in reports:
                # The supervisor may be gone: then the runs are being stopped, and that is all.
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await self.channel.send_all(encode(report))


class _Started(trio.TaskStatus[StartedRun]):
    """The `task_status` of a run started with `start_soon`: hands the executor the run's handle
    as soon as the run can take commands, without a nursery per run as `Nursery.start` needs."""

    def __init__(self, executor: Executor, run_id: str) -> None:
        self._executor = executor
        self._run_id = run_id

    def started(self, value: StartedRun | None = None) -> None:
        assert value is not None, "execute_run reports its StartedRun"
        self._executor._started(self._run_id, value)


async def log_events(events: trio.MemoryReceiveChannel[RunEvent]) -> None:
    """One log line per run and task state change, for every run."""
    async with events:
        async for event in events:
            match event:
                case RunStarted(record=record):
                    log.info("%s started (%s)", record.run_id, record.trigger)
                case TaskUpdated(run_id=run_id, record=task) if task.state is not TaskState.PENDING:
                    error = f": {task.error}" if task.error and task.state.terminal else ""
                    log.info("%s %s %s%s", run_id, task.name, task.state.value, error)
                case RunFinished(record=record):
                    error = f" ({record.error})" if record.error else ""
                    log.info("%s %s%s", record.run_id, record.state.value, error)


async def log_output(run_id: str, output: trio.MemoryReceiveChannel[TaskOutput]) -> None:
    """Each line of a run's task output (`pit serve --verbose`)."""
    lines = OutputLines()
    async with output:
        async for chunk in output:
            for line in lines.feed(chunk):
                log.info("%s [%s] %s", run_id, chunk.task, line)
    for task, line in lines.rest().items():
        log.info("%s [%s] %s", run_id, task, line)
