"""The task actor: runs one task's attempts, with retries, a timeout and graceful stopping.

It owns a mailbox of `TaskCommand`s (stop, kill) and reports `TaskEvent`s to its run. Whatever
happens (exit, timeout, stop, an outer cancellation) the task's process group is gone when the
actor returns.
"""

from __future__ import annotations

import contextlib
import math
import signal
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, assert_never

import attrs
import trio

from pit.actors import peers
from pit.actors.masking import Masker
from pit.actors.orphans import end_escapees
from pit.actors.pools import Pool
from pit.actors.process import (
    GroupProcess,
    TaskLog,
    kill_group,
    pump_output,
    signal_group,
    signal_name,
    spawn_group,
    wait_for_output,
)
from pit.clock import Clock
from pit.messages.run import RunInbox
from pit.messages.task import (
    AttemptFailed,
    AttemptStarted,
    KillTask,
    StopTask,
    TaskCommand,
    TaskFinished,
    TaskOutput,
    TaskQueued,
)
from pit.runners.command import InProcessLaunch, Outcome, ProcessLaunch
from pit.runners.dbt import DBT_JSONL, keep_artifacts
from pit.runners.dbtlog import DbtLog
from pit.spec.dag import RunnerKind, TaskSpec
from pit.spec.defaults import DEFAULT_STOP_GRACE
from pit.spec.durations import format_duration
from pit.spec.states import TaskState

if TYPE_CHECKING:
    from pit.remote.cluster import RemoteRun


@attrs.frozen(kw_only=True)
class TaskHandle:
    name: str
    inbox: trio.MemorySendChannel[TaskCommand]


@attrs.define
class _Control:
    """What the mailbox listener and the attempt loop share inside one task actor."""

    grace: float
    stop_reason: str | None = None
    killed: bool = False
    interruptible: trio.CancelScope | None = None
    """The scope a stop cancels: the wait on the process, or the sleep before a retry."""
    grace_scope: trio.CancelScope | None = None

    def stop(self, reason: str) -> None:
        self.stop_reason = self.stop_reason or reason
        if self.interruptible is not None:
            self.interruptible.cancel()

    def kill(self) -> None:
        self.killed = True
        self.stop("killed")
        if self.grace_scope is not None:
            self.grace_scope.cancel()

    @contextlib.contextmanager
    def interruptible_scope(self) -> Iterator[trio.CancelScope]:
        with trio.CancelScope() as scope:
            self.interruptible = scope
            if self.stop_reason is not None:
                scope.cancel()
            try:
                yield scope
            finally:
                self.interruptible = None

    def new_grace_scope(self) -> trio.CancelScope:
        self.grace_scope = trio.CancelScope(deadline=trio.current_time() + self.grace)
        if self.killed:
            self.grace_scope.cancel()
        return self.grace_scope


@attrs.frozen(kw_only=True)
class TaskActor:
    task: TaskSpec
    launch: Callable[[int], ProcessLaunch | InProcessLaunch]
    """Builds the launch of attempt number n (the environment names the attempt)."""
    log_path: Path
    run_inbox: trio.MemorySendChannel[RunInbox]
    """This actor's own clone of its run's inbox; closed when the actor ends."""
    clock: Clock
    grace: float = DEFAULT_STOP_GRACE
    output: trio.MemorySendChannel[TaskOutput] | None = None
    """Where live output goes when a view asked for it; None keeps output in the log file only."""
    secret_values: frozenset[str] = frozenset()
    """Values masked in the task's output (its log and live view); any forces a pipe."""
    pool: Pool | None = None
    """The pool whose slot each attempt takes (see `pit.actors.pools`)."""
    hooks: Mapping[str, Callable[[], ProcessLaunch | InProcessLaunch]] = attrs.field(factory=dict)
    """`on_failure` / `on_success` -> builds the hook's launch (the task's, another script)."""
    remote: RemoteRun | None = None
    """Where its attempts' processes run under `[executor] kind = "dask"`: on the cluster (its
    hooks, and dbt's and SQL's work, stay on pit's machine). None: here."""

    async def run(
        self,
        mailbox: trio.MemoryReceiveChannel[TaskCommand],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run the task's attempts, taking commands from `mailbox` meanwhile."""
        control = _Control(grace=self.grace)
        async with self.run_inbox, contextlib.AsyncExitStack() as stack:
            if self.output is not None:
                await stack.enter_async_context(self.output)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._listen, mailbox, control)
                task_status.started()
                finished = await self._attempts(control)
                kind = {TaskState.SUCCESS: "on_success", TaskState.FAILED: "on_failure"}.get(
                    finished.state
                )
                hook = self.hooks.get(kind) if kind and control.stop_reason is None else None
                if kind is not None and hook is not None:
                    outcome = await self._hook(kind, hook(), finished, control)
                    finished = attrs.evolve(finished, hook=f"{kind}: {outcome}")
                await self.run_inbox.send(finished)
                mailbox.close()  # the listener ends: no command can matter now

    async def _listen(
        self, receive: trio.MemoryReceiveChannel[TaskCommand], control: _Control
    ) -> None:
        with contextlib.suppress(trio.ClosedResourceError):
            async for command in receive:
                match command:
                    case StopTask(reason=reason):
                        control.stop(reason)
                    case KillTask():
                        control.kill()
                    case _:
                        assert_never(command)

    async def _attempts(self, control: _Control) -> TaskFinished:
        attempt, outcome = 0, Outcome(exit_code=None, error=None)
        while control.stop_reason is None:
            attempt += 1
            async with self._slot(control) as turn:
                if not turn:  # stopped while queued for its pool
                    attempt -= 1
                    break
                outcome = await self._attempt(attempt, control)
            if outcome.ok or control.stop_reason is not None or attempt > self.task.retries:
                break
            retry_in = self.task.retry_wait(attempt)
            await self.run_inbox.send(
                AttemptFailed(
                    task=self.task.name,
                    attempt=attempt,
                    exit_code=outcome.exit_code,
                    error=outcome.error or "",
                    retry_in=retry_in,
                    at=self.clock.now(),
                )
            )
            with control.interruptible_scope():
                await trio.sleep(retry_in)
        error = control.stop_reason if control.stop_reason is not None else outcome.error
        state = TaskState.SUCCESS if error is None else TaskState.FAILED
        return TaskFinished(
            task=self.task.name,
            state=TaskState.SKIPPED if attempt == 0 else state,  # stopped while queued
            attempts=attempt,
            exit_code=outcome.exit_code,
            error=error,
            at=self.clock.now(),
        )

    @contextlib.asynccontextmanager
    async def _slot(self, control: _Control) -> AsyncIterator[bool]:
        """A slot of the task's pool for one attempt (none needed without a pool), the task
        said queued to its run while it waits; False when it was stopped first."""
        pool = self.pool
        if pool is None:
            yield True
            return
        if not pool.take_now():
            queued = TaskQueued(task=self.task.name, pool=pool.name, at=self.clock.now())
            await self.run_inbox.send(queued)
            with control.interruptible_scope() as waiting:
                await pool.take(self.task.priority)
            if waiting.cancelled_caught:
                yield False
                return
        try:
            yield control.stop_reason is None
        finally:
            pool.give_back()

    async def _attempt(self, attempt: int, control: _Control) -> Outcome:
        launch = self.launch(attempt)
        # Unbuffered: the header lands before the process writes, and `pit logs -f` sees output
        # as it comes. Opening a local file is too quick to be worth a thread.
        try:
            log = TaskLog(self.log_path, "ab")
        except OSError as exc:  # the run folder removed, the disk full: this attempt fails
            await self.run_inbox.send(
                AttemptStarted(task=self.task.name, attempt=attempt, at=self.clock.now())
            )
            return Outcome(exit_code=None, error=f"cannot open its log: {exc.strerror or exc}")
        with log:
            started = AttemptStarted(task=self.task.name, attempt=attempt, at=self.clock.now())
            total = self.task.retries + 1
            local = started.at.astimezone()
            log.write(
                f"=== attempt {attempt}/{total} at {local:%Y-%m-%d %H:%M:%S%z} ===\n".encode()
            )
            if isinstance(launch, ProcessLaunch) and self.remote is not None and not self._dbt:
                return await self._run_remote(self.remote, launch, log, control, started)
            if isinstance(launch, ProcessLaunch):
                return await self._run_process(launch, log, control, started)
            await self.run_inbox.send(started)
            return await self._run_in_process(launch, log, control)

    async def _run_in_process(
        self, launch: InProcessLaunch, log: BinaryIO, control: _Control
    ) -> Outcome:
        outcome = Outcome(exit_code=None, error="did not finish")
        with control.interruptible_scope():
            with trio.move_on_after(self.task.timeout or math.inf) as deadline:
                outcome = await launch.execute(log)
        return _outcome(outcome, deadline.cancelled_caught, self.task.timeout, control.stop_reason)

    async def _run_process(
        self, launch: ProcessLaunch, log: BinaryIO, control: _Control, started: AttemptStarted
    ) -> Outcome:
        """Run the attempt's process. `started` is reported once the process runs: nothing
        should stand between a task's turn and its process starting, not even the run's
        bookkeeping of the report."""
        try:
            # On the event loop's thread: CPython spawns with vfork here, so this blocks only
            # until the child has exec'd (~0.3 ms, whatever pit's size), less than the hand-off
            # to a worker thread costs (measured: 0.5 ms more per task in a chain).
            process = spawn_group(
                launch.argv,
                cwd=str(launch.cwd),
                env=launch.env,
                log=log,
                pipe=self.output is not None or bool(self.secret_values) or self._dbt,
            )
        except OSError as exc:
            await self.run_inbox.send(started)
            message = f"cannot start {launch.argv[0]}: {exc.strerror or exc}"
            log.write(f"pit: {message}\n".encode())
            return Outcome(exit_code=None, error=message)
        dbt = DbtLog() if self._dbt else None
        timed_out = await self._supervise(
            process, launch, log, control, self.task.timeout, dbt=dbt, started=started
        )
        natural = _exit_outcome(process.returncode)
        if dbt is not None:
            await trio.to_thread.run_sync(keep_artifacts, launch.cwd, self.log_path)
            if natural.error is not None and dbt.failed:  # the models and tests that failed
                natural = attrs.evolve(natural, error=f"{natural.error}: {', '.join(dbt.failed)}")
        return _outcome(natural, timed_out, self.task.timeout, control.stop_reason)

    async def _run_remote(
        self,
        remote: RemoteRun,
        launch: ProcessLaunch,
        log: BinaryIO,
        control: _Control,
        started: AttemptStarted,
    ) -> Outcome:
        """Run the attempt on the cluster, following it as a local one: `started` once its
        process runs there (naming the worker), its output masked into the log and the live
        view, a stop or kill passed on (the worker keeps the time limit and the grace)."""
        # Imported here: `pit run` without a cluster never pays for it.
        from pit.remote.clusters import RemoteError
        from pit.remote.follow import CANCEL_WAIT, KILL_WAIT, Follow, Lost
        from pit.remote.wire import Kind, attempt_key

        run_id = launch.env.get("PIT_RUN_ID", "")
        key = attempt_key(run_id, self.task.name, started.attempt)
        follow = Follow(
            task=self.task.name,
            run_inbox=self.run_inbox,
            output=self.output,
            secret_values=self.secret_values,
            log=log,
            started=started,
            clock=self.clock,
        )
        with remote.cluster.hub.expect(key, peers.Member(run_id, self.task.name)) as link:
            try:
                submission = await remote.submit(
                    link, launch, self.task.timeout, self.task.resources
                )
            except RemoteError as exc:
                return await follow.failed(str(exc))
            ended: dict[str, Any] | Lost | None = None
            try:
                with control.interruptible_scope():
                    ended = await follow.events(link, submission)
                if ended is None and control.stop_reason is not None:
                    if not await link.send(Kind.STOP, {"reason": control.stop_reason}):
                        return await follow.failed(control.stop_reason, link.worker)
                    with control.new_grace_scope():
                        ended = await follow.events(link, submission)
                    if ended is None:
                        await link.send(Kind.KILL)
                        with trio.move_on_after(KILL_WAIT):
                            ended = await follow.events(link, submission)
            finally:
                if not isinstance(ended, dict):  # it did not end by itself: Dask must drop it
                    with trio.move_on_after(CANCEL_WAIT, shield=True):
                        await submission.cancel()
                submission.release()
        if not isinstance(ended, dict):
            lost = ended.reason if isinstance(ended, Lost) else "it did not answer its stop"
            return await follow.failed(f"the attempt was lost: {lost}", link.worker)
        await follow.flush()
        if ended.get("error"):  # a stop outranks what it did to the attempt's preparation
            return await follow.failed(control.stop_reason or str(ended["error"]), link.worker)
        natural = _exit_outcome(ended.get("returncode"))
        timed_out = bool(ended.get("timed_out"))
        return _outcome(natural, timed_out, self.task.timeout, control.stop_reason)

    async def _hook(
        self,
        kind: str,
        launch: ProcessLaunch | InProcessLaunch,
        finished: TaskFinished,
        control: _Control,
    ) -> str:
        """Run the task's hook to its end (at most `hook_timeout`, or until the task is told
        to stop; then SIGTERM, the grace, SIGKILL), its output in the task's log; what became
        of it, in words."""
        if not isinstance(launch, ProcessLaunch):
            return "a SQL script cannot be a hook"
        env = {
            **launch.env,
            "PIT_TASK_STATE": finished.state.value,
            "PIT_TASK_ERROR": finished.error or "",
        }
        try:
            log = TaskLog(self.log_path, "ab")
        except OSError as exc:
            return f"cannot open the task's log: {exc.strerror or exc}"
        with log:
            log.write(f"=== {kind} hook ===\n".encode())
            try:
                process = spawn_group(
                    launch.argv,
                    cwd=str(launch.cwd),
                    env=env,
                    log=log,
                    pipe=self.output is not None or bool(self.secret_values),
                )
            except OSError as exc:
                return f"cannot start {launch.argv[0]}: {exc.strerror or exc}"
            timed_out = await self._supervise(process, launch, log, control, self.task.hook_timeout)
        if control.stop_reason is not None:
            return f"stopped: {control.stop_reason}"
        if timed_out:
            return f"timed out after {format_duration(self.task.hook_timeout)}"
        return _exit_outcome(process.returncode).error or "exited 0"

    @property
    def _dbt(self) -> bool:
        return self.task.runner.kind is RunnerKind.DBT

    async def _supervise(
        self,
        process: GroupProcess,
        launch: ProcessLaunch,
        log: BinaryIO,
        control: _Control,
        stop_after: float | None,
        *,
        dbt: DbtLog | None = None,
        started: AttemptStarted | None = None,
    ) -> bool:
        """See a started process group (an attempt, a hook) to its end: its output pumped
        to `log`, stopped `stop_after` seconds in (its time limit: it ends, nothing raises)
        or on command, its tree killed, whatever happens (an outer cancellation kills at
        once). `started` is reported once it runs. Whether its time limit ran out."""
        peers.join(process.pid, peers.Member(launch.env.get("PIT_RUN_ID", ""), self.task.name))
        try:
            if started is not None:
                await self.run_inbox.send(started)
            if process.output is None:
                return await self._wait(process, control, stop_after)
            async with trio.open_nursery() as nursery:
                pumped = trio.Event()
                nursery.start_soon(self._pump, process, log, pumped, dbt)
                timed_out = await self._wait(process, control, stop_after)
                # Leftovers hold the pipe open: end them first.
                await self._end_tree(process, launch)
                await wait_for_output(pumped)
                nursery.cancel_scope.cancel()
            return timed_out
        finally:
            # Reached with the process still running only when the actor itself is cancelled
            # from outside (a pit bug or a teardown): kill at once, never leave it behind.
            with trio.CancelScope(shield=True):
                await self._end_tree(process, launch)
            peers.leave(process.pid)
            process.close()

    async def _wait(
        self, process: GroupProcess, control: _Control, stop_after: float | None
    ) -> bool:
        """Wait for the process to end, stopping it on timeout or command (SIGTERM, the grace
        period, SIGKILL). Returns whether its timeout ran out."""
        with control.interruptible_scope():
            with trio.move_on_after(stop_after or math.inf) as deadline:
                await process.wait()
        if process.returncode is None:
            signal_group(process.pid, signal.SIGTERM)
            with control.new_grace_scope():
                await process.wait()
        return deadline.cancelled_caught

    async def _end_tree(self, process: GroupProcess, launch: ProcessLaunch) -> None:
        """Kill what is left of the attempt: its process group, then the processes that left
        the group (setsid, a double fork), found as orphans of the run's task."""
        await kill_group(process)
        run_id = launch.env.get("PIT_RUN_ID")
        if run_id is not None:
            await end_escapees(run_id, self.task.name)

    async def _pump(
        self, process: GroupProcess, log: BinaryIO, done: trio.Event, dbt: DbtLog | None
    ) -> None:
        async def forward(chunk: bytes) -> None:
            assert self.output is not None
            await self.output.send(TaskOutput(task=self.task.name, data=chunk))

        try:
            masker = Masker(self.secret_values) if self.secret_values else None
            with contextlib.ExitStack() as held:
                transform = None
                if dbt is not None:  # its raw JSON kept beside the log, masked as well
                    raw = held.enter_context(TaskLog(self.log_path.with_suffix(DBT_JSONL), "ab"))
                    raw_masker = Masker(self.secret_values) if self.secret_values else None
                    transform = _DbtTap(dbt, raw, raw_masker)
                forwarding = forward if self.output else None
                await pump_output(process, log, forwarding, masker, transform)
        finally:
            done.set()


@attrs.define
class _DbtTap:
    """dbt's JSON output made readable for the log, its raw lines written to `raw`."""

    dbt: DbtLog
    raw: BinaryIO
    masker: Masker | None

    def feed(self, chunk: bytes) -> bytes:
        shown = self.dbt.feed(chunk)
        self._keep()
        return shown

    def flush(self) -> bytes:
        shown = self.dbt.flush()
        self._keep()
        if self.masker is not None:
            self.raw.write(self.masker.flush())
        return shown

    def _keep(self) -> None:
        if raw := self.dbt.take_raw():
            self.raw.write(self.masker.feed(raw) if self.masker else raw)


def _exit_outcome(returncode: int | None) -> Outcome:
    if returncode == 0:
        return Outcome(exit_code=0, error=None)
    if returncode is not None and returncode < 0:
        return Outcome(exit_code=returncode, error=f"killed by {signal_name(returncode)}")
    return Outcome(exit_code=returncode, error=f"exit code {returncode}")


def _outcome(
    natural: Outcome, timed_out: bool, timeout: float | None, stop_reason: str | None
) -> Outcome:
    """The attempt's outcome: a timeout or a stop outranks how the work itself ended."""
    if timed_out:
        return Outcome(
            exit_code=natural.exit_code, error=f"timed out after {format_duration(timeout or 0)}"
        )
    if stop_reason is not None:
        return Outcome(exit_code=natural.exit_code, error=stop_reason)
    return natural
