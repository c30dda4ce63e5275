"""The executor: the process `pit serve` starts to execute its runs (see
`actors/executor_process.py` for why, and for the supervisor's side of their conversation).

It takes `Execute` and `CancelExecution` over its socket, runs `execute_run` for each run,
reports `RunEnded`, and logs one line per run and task state change. When the supervisor's
end of the socket closes, it kills whatever it still runs and returns.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import assert_never

import attrs
import trio

from pit.actors.broker import SocketFolder
from pit.actors.execute import StartedRun, execute_run
from pit.actors.frames import FrameError, FrameReader, encode
from pit.actors.guard import RunGuard
from pit.actors.lines import OutputLines
from pit.actors.orphans import end_escapees
from pit.actors.pools import Pools
from pit.actors.run import RunHandle
from pit.actors.store import StoreWriter
from pit.clock import Clock
from pit.errors import RunError
from pit.messages.executor import CancelExecution, Execute, ExecutorSetup, ToExecutor
from pit.messages.run import CancelRun, RunEnded, RunEvent, RunRecord, RunStarted, TaskUpdated
from pit.messages.task import TaskOutput
from pit.remote.clusters import Clusters, open_clusters
from pit.spec.states import RunState, TaskState
from pit.store.rundir import RunPaths

log = logging.getLogger("pit.serve")


@attrs.define(kw_only=True)
class Executor:
    """Executes the runs the supervisor sends until the supervisor's end of `channel` closes;
    then kills whatever is still running (nothing outlives pit) and returns."""

    channel: trio.SocketStream
    clock: Clock
    guard: RunGuard | None = None
    """Told of every run, so that they end even if this process and pit serve both die."""
    _setup: ExecutorSetup = attrs.field(init=False)
    _runs: dict[str, RunHandle | None] = attrs.field(init=False, factory=dict)
    """Run id -> its handle once it can take commands (None while its snapshot is taken)."""
    _cancels: dict[str, CancelExecution] = attrs.field(init=False, factory=dict)
    """Cancels of runs not started yet, carried out as they start."""
    _services: trio.Nursery = attrs.field(init=False)
    _store: StoreWriter | None = attrs.field(init=False, default=None)
    """The process's one writer of the run store."""
    _pools: Pools = attrs.field(init=False, factory=Pools)
    """The pools every run of pit serve shares."""
    _clusters: Clusters | None = attrs.field(init=False, default=None)
    """The Dask clusters its runs' tasks go to (`[executor]`), opened at first use."""

    async def run(self) -> None:
        commands = FrameReader.to_executor(self.channel)
        setup = await commands.receive()
        if setup is None:
            return  # the supervisor went away before it said anything
        if not isinstance(setup, ExecutorSetup):
            raise FrameError(f"an executor must be set up first, not sent {setup!r}")
        self._setup = setup
        # Unbounded, both: a run must never wait on the supervisor's socket or on the log to
        # end; each run sends one report, and a handful of events per task.
        reports, to_send = trio.open_memory_channel[RunEnded](math.inf)
        events, to_log = trio.open_memory_channel[RunEvent](math.inf)
        with SocketFolder.create() as sockets:
            if self.guard is not None:
                self.guard.holds(sockets.path)
            async with trio.open_nursery() as services:
                self._services = services
                services.start_soon(self._send_reports, to_send)
                services.start_soon(log_events, to_log)
                if setup.store is not None and setup.runs_dir is not None:
                    self._store = StoreWriter(path=setup.store, runs_dir=setup.runs_dir)
                    services.start_soon(self._store.run)
                try:
                    async with open_clusters() as self._clusters:
                        await self._serve(commands, sockets, reports, events)
                finally:
                    if self._store is not None:
                        self._store.close()  # it writes what it holds, then ends

    async def _serve(
        self,
        commands: FrameReader[ToExecutor],
        sockets: SocketFolder,
        reports: trio.MemorySendChannel[RunEnded],
        events: trio.MemorySendChannel[RunEvent],
    ) -> None:
        """Execute and cancel runs as told, until the supervisor's end of the socket closes."""
        async with reports, events, trio.open_nursery() as runs:
            while (message := await commands.receive()) is not None:
                match message:
                    case Execute():
                        runs.start_soon(
                            self._execute, message, sockets, reports.clone(), events.clone()
                        )
                    case CancelExecution():
                        self._cancel(message)
                    case ExecutorSetup():
                        raise FrameError("an executor is set up once")
                    case _:
                        assert_never(message)
            # The supervisor is gone (or done, and then nothing is running).
            for run_id in list(self._runs):
                self._cancel(CancelExecution(run_id=run_id, kill=True))

    def _cancel(self, cancel: CancelExecution) -> None:
        handle = self._runs.get(cancel.run_id)
        if handle is None:
            if cancel.run_id in self._runs:  # not started yet: stopped as soon as it starts
                held = self._cancels.get(cancel.run_id)
                kill = cancel.kill or (held is not None and held.kill)
                self._cancels[cancel.run_id] = attrs.evolve(cancel, kill=kill)
            return
        # A run that ended meanwhile has closed its inbox; its report is on its way.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            # A run's inbox is unbounded.
            handle.inbox.send_nowait(CancelRun(kill=cancel.kill, by=cancel.by))

    def _started(self, run_id: str, started: StartedRun) -> None:
        self._runs[run_id] = started.handle
        cancel = self._cancels.pop(run_id, None)
        if cancel is not None:
            self._cancel(cancel)

    async def _execute(
        self,
        message: Execute,
        sockets: SocketFolder,
        reports: trio.MemorySendChannel[RunEnded],
        events: trio.MemorySendChannel[RunEvent],
    ) -> None:
        paths = RunPaths(root=message.run_dir)
        self._runs[paths.run_id] = None
        output: trio.MemorySendChannel[TaskOutput] | None = None
        if self._setup.stream_output:
            output, lines = trio.open_memory_channel[TaskOutput](math.inf)
            self._services.start_soon(log_output, paths.run_id, lines)
        request = message.request
        # What the supervisor hears if the run cannot start; its run.json says the same.
        ended = [
            RunRecord(
                run_id=paths.run_id,
                dag=request.dag.name,
                trigger=request.trigger,
                state=RunState.FAILED,
                error="could not start",
            )
        ]
        # Closed here too (the run actor closes them when it ends): a run that failed to start
        # must not hold the log open.
        with reports, events, output or contextlib.nullcontext():
            try:

                async def run_to_end(task_status: trio.TaskStatus[StartedRun]) -> None:
                    ended.append(
                        await execute_run(
                            request,
                            clock=self.clock,
                            env=self._setup.env,
                            secrets=self._setup.secrets,
                            paths=paths,
                            sockets=sockets,
                            pools=self._pools,
                            clusters=self._clusters,
                            background=self._services,  # notifications outlive the run
                            observers=(events,),
                            output=output,
                            guard=self.guard,
                            store=self._store,
                            task_status=task_status,
                        )
                    )

                async with trio.open_nursery() as run:
                    self._started(paths.run_id, await run.start(run_to_end))
            except* RunError as group:  # it could not start (its snapshot failed): not pit
                for exc in group.exceptions:
                    log.error("%s: could not start: %s", paths.run_id, exc)
            finally:
                del self._runs[paths.run_id]
                self._cancels.pop(paths.run_id, None)
                with trio.CancelScope(shield=True):
                    await end_escapees(paths.run_id)
            reports.send_nowait(RunEnded(record=ended[-1]))

    async def _send_reports(self, reports: trio.MemoryReceiveChannel[RunEnded]) -> None:
        async with reports:
            async for report in reports:
                # The supervisor may be gone: then the runs are being stopped, and that is all.
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await self.channel.send_all(encode(report))


async def log_events(events: trio.MemoryReceiveChannel[RunEvent]) -> None:
    """One log line per run and task state change, for every run."""
    async with events:
        async for event in events:
            match event:
                case RunStarted(record=record):
                    log.info("%s started (%s)", record.run_id, record.trigger)
                case TaskUpdated(run_id=run_id, record=task):
                    if task.state is not TaskState.PENDING:
                        error = f": {task.error}" if task.error and task.state.terminal else ""
                        log.info("%s %s %s%s", run_id, task.name, task.state.value, error)
                case RunEnded(record=record):
                    error = f" ({record.error})" if record.error else ""
                    log.info("%s %s%s", record.run_id, record.state.value, error)
                case _:
                    assert_never(event)


async def log_output(run_id: str, output: trio.MemoryReceiveChannel[TaskOutput]) -> None:
    """Each line of a run's task output (`pit serve --verbose`)."""
    lines = OutputLines()
    async with output:
        async for chunk in output:
            for line in lines.feed(chunk):
                log.info("%s [%s] %s", run_id, chunk.task, line)
    for task, line in lines.rest().items():
        log.info("%s [%s] %s", run_id, task, line)
