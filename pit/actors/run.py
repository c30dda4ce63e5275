"""The run actor: walks one DAG run from start to end.

It starts a task actor for each task whose dependencies succeeded (at most `max_active` at a time),
marks everything downstream of a failure `upstream_failed`, enforces the DAG timeout, and answers
`CancelRun`. Every state change becomes a `RunEvent` for its observers (the manifest writer, views).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import math
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, assert_never

import attrs
import trio

from pit.actors.masking import Masker
from pit.actors.pools import Pools
from pit.actors.task import TaskActor, TaskHandle
from pit.clock import Clock
from pit.messages.run import (
    Attempt,
    CancelRun,
    RunDeadlinePassed,
    RunEnded,
    RunEvent,
    RunInbox,
    RunOwner,
    RunRecord,
    RunStarted,
    StopRun,
    TaskRecord,
    TaskUpdated,
)
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
from pit.runners.command import InProcessLaunch, ProcessLaunch
from pit.spec.dag import DagSpec, RequiresElse, TaskSpec
from pit.spec.defaults import DEFAULT_STOP_GRACE
from pit.spec.durations import format_duration
from pit.spec.graph import downstream
from pit.spec.params import Value
from pit.spec.states import (
    CANCELLED,
    RunState,
    TaskState,
    check_run_transition,
    check_task_transition,
    cut_short,
    run_outcome,
)

if TYPE_CHECKING:
    from pit.remote.cluster import RemoteRun

_FINISH_WAIT = 5.0


REQUIRES_POLL = 30.0
"""Seconds between two checks of a run's required DAGs while it waits for them."""


@attrs.frozen(kw_only=True)
class RunHandle:
    run_id: str
    inbox: trio.MemorySendChannel[RunInbox]


@attrs.define(kw_only=True)
class RunActor:
    dag: DagSpec
    run_id: str
    trigger: str
    scheduled_time: dt.datetime | None = None
    launch: Callable[[TaskSpec, int], ProcessLaunch | InProcessLaunch]
    logs_dir: Path
    clock: Clock
    observers: Sequence[trio.MemorySendChannel[RunEvent]] = ()
    """Each receives every state event; the actor closes them when the run has ended."""
    output: trio.MemorySendChannel[TaskOutput] | None = None
    max_active: int = 4
    only_task: str | None = None
    """Run just this task; the others are skipped (`pit run dag/task`)."""
    grace: float = DEFAULT_STOP_GRACE
    secret_values: frozenset[str] = frozenset()
    """Masked in every task's output."""
    owner: RunOwner | None = None
    """This process, recorded on the run so that a dead owner's run can be told and settled."""
    rerun_of: str | None = None
    code_version: str | None = None
    code_commit: str | None = None
    code_note: str | None = None
    params: Mapping[str, Value] = attrs.field(factory=dict)
    requirements: Callable[[], Awaitable[str | None]] | None = None
    """Why the DAGs it `requires` do not let it start yet (None: they do); checked before its
    first task, again every `REQUIRES_POLL` for up to the DAG's `requires_wait`."""
    pools: Pools = attrs.field(factory=Pools)
    """The pools of this process, which its tasks naming one take slots of."""
    remote: RemoteRun | None = None
    """The cluster its tasks' processes run on (`[executor] kind = "dask"`); None: here."""
    pool_sizes: Mapping[str, int] = attrs.field(factory=dict)
    reused: Mapping[str, TaskRecord] = attrs.field(factory=dict)
    """A re-run's tasks that succeeded in the run re-run: they start as its records say (with
    `reused_from`), and count as done for the tasks that depend on them."""

    _run: RunRecord = attrs.field(init=False)
    """The run's own fields; its tasks live in `_tasks` (see `record`)."""
    _tasks: dict[str, TaskRecord] = attrs.field(init=False, factory=dict)
    _running: dict[str, TaskHandle] = attrs.field(init=False, factory=dict)
    _ready: deque[str] = attrs.field(init=False, factory=deque)
    _waiting_on: dict[str, int] = attrs.field(init=False, factory=dict)
    _dependants: dict[str, list[str]] = attrs.field(init=False, factory=dict)
    _edges: dict[str, tuple[str, ...]] = attrs.field(init=False, factory=dict)
    _masker: Masker = attrs.field(init=False)
    """Every error the run records passes it: a driver's message may quote a secret."""
    _attempt_started: dict[str, dt.datetime] = attrs.field(init=False, factory=dict)
    """When each running task's current attempt started."""
    _stopping: str | None = attrs.field(init=False, default=None)
    """Why the run is being stopped (timeout, cancel); no task starts once it is set."""

    def __attrs_post_init__(self) -> None:
        self._masker = Masker(self.secret_values)
        self._run = RunRecord(
            run_id=self.run_id,
            dag=self.dag.name,
            trigger=self.trigger,
            scheduled_time=self.scheduled_time,
            owner=self.owner,
            rerun_of=self.rerun_of,
            code_version=self.code_version,
            code_commit=self.code_commit,
            code_note=self.code_note,
            params=self.params,
        )
        for task in self.dag.tasks:
            reused = self.reused.get(task.name)
            self._tasks[task.name] = reused or TaskRecord(name=task.name, pool=task.pool)
            self._waiting_on[task.name] = sum(dep not in self.reused for dep in task.depends_on)
            self._edges[task.name] = task.depends_on
            self._dependants.setdefault(task.name, [])
            for dep in task.depends_on:
                self._dependants.setdefault(dep, []).append(task.name)

    @property
    def record(self) -> RunRecord:
        """The whole run as it stands."""
        return attrs.evolve(self._run, tasks=tuple(self._tasks.values()))

    async def run(
        self, *, task_status: trio.TaskStatus[RunHandle] = trio.TASK_STATUS_IGNORED
    ) -> RunRecord:
        # Buffered, so a task actor reports and goes on at once instead of waiting for the run to
        # take each report: it is bounded all the same, since each running task sends at most
        # three messages per attempt and waits on a process in between.
        send, inbox = trio.open_memory_channel[RunInbox](math.inf)
        async with inbox, send:
            try:
                task_status.started(RunHandle(run_id=self.run_id, inbox=send.clone()))
                await self._execute(send, inbox)
            finally:
                # Shielded so an outer cancellation still records the end, bounded so an
                # observer that stopped receiving cannot hold the run open.
                with trio.CancelScope(shield=True, deadline=trio.current_time() + _FINISH_WAIT):
                    await self._finish()
        return self.record

    async def _execute(
        self, send: trio.MemorySendChannel[RunInbox], inbox: trio.MemoryReceiveChannel[RunInbox]
    ) -> None:
        await self._set_run(state=RunState.RUNNING, started_at=self.clock.now())
        await self._publish(RunStarted(record=self.record))
        if self.only_task is not None:
            for name in self._tasks:
                if name != self.only_task:
                    await self._set_task(name, state=TaskState.SKIPPED)
            self._ready.append(self.only_task)
        else:
            self._ready.extend(
                name
                for name, waiting in self._waiting_on.items()
                if waiting == 0 and name not in self.reused
            )
        async with trio.open_nursery() as tasks_nursery:
            if self.dag.timeout is not None:
                tasks_nursery.start_soon(_deadline, self.dag.timeout, send.clone())
            await self._await_requirements(inbox, tasks_nursery, send)
            await self._start_ready(tasks_nursery, send)
            while self._running:
                await self._handle(await inbox.receive(), tasks_nursery, send)
            tasks_nursery.cancel_scope.cancel()  # only the deadline timer is left

    async def _handle(
        self, message: RunInbox, nursery: trio.Nursery, send: trio.MemorySendChannel[RunInbox]
    ) -> None:
        match message:
            case TaskQueued(task=name, pool=pool):
                await self._set_task(name, state=TaskState.QUEUED, pool=pool)
            case AttemptStarted(task=name, attempt=attempt, at=at, worker=worker):
                record = self._tasks[name]
                self._attempt_started[name] = at
                history = record.history
                if attempt > 1:  # tried again: the new attempt opens in the history
                    history = (*history, Attempt(number=attempt, started_at=at, worker=worker))
                await self._set_task(
                    name,
                    state=TaskState.RUNNING,
                    attempts=attempt,
                    started_at=record.started_at or at,
                    error=None,
                    retry_in=None,
                    history=history,
                    worker=worker,
                )
            case AttemptFailed(
                task=name, attempt=attempt, exit_code=code, error=error, retry_in=retry_in, at=at
            ):
                record = self._tasks[name]
                history = record.history or (
                    Attempt(
                        number=attempt,
                        started_at=self._attempt_started.get(name),
                        worker=record.worker,
                    ),
                )
                ended = attrs.evolve(
                    history[-1], ended_at=at, exit_code=code, error=self._masker.mask(error)
                )
                await self._set_task(
                    name,
                    state=TaskState.RUNNING,
                    exit_code=code,
                    error=error,
                    retry_in=retry_in,
                    history=(*history[:-1], ended),
                )
            case TaskFinished(
                task=name,
                state=state,
                attempts=attempts,
                exit_code=code,
                error=error,
                at=at,
                hook=hook,
            ):
                del self._running[name]
                if state is TaskState.SUCCESS:
                    self._release_dependants(name)
                # The next task's process starts before the record is made and observed: that
                # bookkeeping must not stand between a freed slot and its next task.
                await self._start_ready(nursery, send)
                history = self._tasks[name].history
                if history:  # the last attempt closes in the history too
                    last = attrs.evolve(
                        history[-1],
                        ended_at=at,
                        exit_code=code,
                        error=None if error is None else self._masker.mask(error),
                    )
                    history = (*history[:-1], last)
                await self._set_task(
                    name,
                    state=state,
                    attempts=attempts,
                    exit_code=code,
                    error=error,
                    ended_at=at,
                    retry_in=None,
                    history=history,
                    hook=hook and self._masker.mask(hook),
                )
                if state is not TaskState.SUCCESS:
                    await self._fail_downstream(name)
            case RunDeadlinePassed():
                timeout = format_duration(self.dag.timeout or 0)
                await self._stop_run(f"run timed out after {timeout}", StopTask)
            case CancelRun(kill=kill, by=by):
                why = f"{CANCELLED} by {by}" if by else CANCELLED
                await self._stop_run(CANCELLED, KillTask if kill else StopTask, error=why)
            case StopRun(reason=reason):
                await self._stop_run(reason, StopTask)
            case _:
                assert_never(message)

    async def _await_requirements(
        self,
        inbox: trio.MemoryReceiveChannel[RunInbox],
        nursery: trio.Nursery,
        send: trio.MemorySendChannel[RunInbox],
    ) -> None:
        """Wait (taking commands: a cancel, the run's timeout) until the DAGs this one requires
        let it start; past `requires_wait`, stop the run as the DAG's `requires_else` says."""
        if self.requirements is None:
            return
        deadline = trio.current_time() + self.dag.requires_wait
        while self._stopping is None:
            unmet = await self.requirements()
            if unmet is None:
                return
            left = deadline - trio.current_time()
            if left <= 0:
                if self.dag.requires_else is RequiresElse.SKIP:
                    await self._stop_run(CANCELLED, StopTask, error=f"skipped: {unmet}")
                else:
                    await self._stop_run(unmet, StopTask)
                return
            message = None
            with trio.move_on_after(min(left, REQUIRES_POLL)):
                message = await inbox.receive()
            if message is not None:  # handled whole: a stop must not be cut in half
                await self._handle(message, nursery, send)

    def _release_dependants(self, name: str) -> None:
        if self.only_task is not None:
            return
        for dependant in self._dependants[name]:
            self._waiting_on[dependant] -= 1
            if self._waiting_on[dependant] == 0:
                self._ready.append(dependant)

    async def _fail_downstream(self, name: str) -> None:
        if self.only_task is not None:
            return
        for dependant in sorted(downstream(self._edges, name)):
            if self._tasks[dependant].state is TaskState.PENDING:
                await self._set_task(
                    dependant,
                    state=TaskState.UPSTREAM_FAILED,
                    error=f"upstream task '{name}' did not succeed",
                )

    async def _start_ready(
        self, nursery: trio.Nursery, send: trio.MemorySendChannel[RunInbox]
    ) -> None:
        while self._ready and len(self._running) < self.max_active and self._stopping is None:
            name = self._ready.popleft()
            spec = self.dag.task(name)
            actor = TaskActor(
                task=spec,
                launch=functools.partial(self.launch, spec),
                log_path=self.logs_dir / f"{name}.log",
                run_inbox=send.clone(),
                clock=self.clock,
                grace=self.grace,
                output=self.output.clone() if self.output else None,
                secret_values=self.secret_values,
                pool=self.pools.get(spec.pool, self.pool_sizes) if spec.pool else None,
                remote=self.remote,
                hooks={
                    kind: functools.partial(self.launch, hook, 1)
                    for kind in ("on_failure", "on_success")
                    if (hook := spec.hook(kind)) is not None
                },
            )
            # Started in turn (each runs up to its process starting), so tasks ready together
            # start in the DAG's order, run after run.
            inbox, mailbox = trio.open_memory_channel[TaskCommand](0)
            await nursery.start(actor.run, mailbox)
            self._running[name] = TaskHandle(name=name, inbox=inbox)

    async def _stop_run(
        self,
        reason: str,
        command: type[StopTask] | type[KillTask],
        *,
        error: str | None = None,
    ) -> None:
        """Stop the run for `reason` (CANCELLED makes it end cancelled); `error`, when given,
        is what its records say instead (who cancelled it)."""
        said = error or reason
        if self._stopping is None:
            self._stopping = reason
            self._run = attrs.evolve(self._run, error=self._masker.mask(said))
            for name, record in self._tasks.items():
                if record.state is TaskState.PENDING:
                    await self._set_task(name, state=TaskState.SKIPPED, error=said)
        message: TaskCommand = KillTask() if command is KillTask else StopTask(reason=said)
        for handle in list(self._running.values()):
            # A task that finished meanwhile has closed its inbox; its TaskFinished is on its way.
            with contextlib.suppress(trio.BrokenResourceError):
                await handle.inbox.send(message)

    async def _finish(self) -> None:
        """Settle the final state (also after an outer cancellation) and close the observers."""
        try:
            await self._settle()
        finally:
            # Even if settling ran out of time: an observer waits for the end of its channel.
            for observer in self.observers:
                observer.close()
            if self.output is not None:
                self.output.close()  # each task actor closed its own clone already

    async def _settle(self) -> None:
        unsettled = [name for name, r in self._tasks.items() if not r.state.terminal]
        for name in unsettled:
            # Only an outer cancellation leaves tasks unsettled; their processes are dead by now.
            record = self._tasks[name]
            await self._set_task(
                name, state=cut_short(record.state, record.attempts), error=CANCELLED
            )
        stop_reason = CANCELLED if unsettled else self._stopping
        state = run_outcome((r.state for r in self._tasks.values()), stop_reason=stop_reason)
        if not self._run.state.terminal:
            await self._set_run(state=state, ended_at=self.clock.now())
        await self._publish(RunEnded(record=self.record))

    async def _set_task(self, name: str, **changes: object) -> None:
        if isinstance(error := changes.get("error"), str):
            changes["error"] = self._masker.mask(error)
        old = self._tasks[name]
        new_state = changes.get("state", old.state)
        assert isinstance(new_state, TaskState)
        check_task_transition(old.state, new_state)
        record = attrs.evolve(old, **changes)  # type: ignore[arg-type]
        self._tasks[name] = record
        await self._publish(TaskUpdated(run_id=self.run_id, record=record))

    async def _set_run(self, **changes: object) -> None:
        state = changes.get("state", self._run.state)
        assert isinstance(state, RunState)
        check_run_transition(self._run.state, state)
        self._run = attrs.evolve(self._run, **changes)  # type: ignore[arg-type]

    async def _publish(self, event: RunEvent) -> None:
        for observer in self.observers:
            # An observer that went away (a closed view) must not stop the run.
            with contextlib.suppress(trio.BrokenResourceError):
                try:
                    # Without a checkpoint when there is room: the run goes on to start the
                    # next task before the observers take their turn.
                    observer.send_nowait(event)
                except trio.WouldBlock:
                    await observer.send(event)


async def _deadline(seconds: float, inbox: trio.MemorySendChannel[RunInbox]) -> None:
    async with inbox:
        await trio.sleep(seconds)
        await inbox.send(RunDeadlinePassed())
