"""The supervisor of `pit serve`: the actor that carries out what its pure parts decide.

- `Catalog` (`actors/catalog.py`): the DAGs served, each as last read well; `Reload` feeds it.
- `Admission` (`actors/admission.py`): which requested run starts, waits or is refused.
- `Triggers` (`actors/triggers.py`): the schedules and FTP watches, one cancel scope per DAG.
- `ExecutorProcess`: the process that executes the runs, so busy runs never slow the listener
  and the triggers.

The supervisor makes each accepted run's folder (so a webhook is answered with its run id at
once), hands runs to the executor, tells requesters how their runs ended, and on `Stop` ends the
triggers, records the runs that will not start, and gives active runs `shutdown_grace`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import assert_never

import attrs
import trio

from pit.actors.admission import Admission, Refuse, Start
from pit.actors.catalog import Catalog
from pit.actors.executor_process import ExecutorProcess
from pit.actors.plans import plan_run
from pit.actors.reconcile import settle_dead_runs
from pit.actors.triggers import Triggers
from pit.clock import Clock
from pit.errors import PitError, RunError
from pit.messages.executor import ExecutorSetup
from pit.messages.run import RunEnded
from pit.messages.trigger import Reload, RunRequested, Stop, SupervisorHandle, SupervisorInbox
from pit.messages.web import WebHandle, WebhookTokens, WebListener
from pit.messages.webhook import RejectReason, RunAccepted, RunRejected, RunRequestAnswer
from pit.spec.load import Workspace, load_workspace
from pit.spec.problems import plural
from pit.spec.secrets import Secrets
from pit.spec.workspace import DEFAULT_MAX_QUEUED_RUNS, DEFAULT_SHUTDOWN_GRACE
from pit.store.rundir import RunPaths, claim_run_dir, never_started, write_manifest

log = logging.getLogger("pit.serve")

WEB_SHUTDOWN = 5.0
"""Seconds the webhook listener gets to close its connections once the last run has ended."""

INBOX_SIZE = 256
"""Requests that may wait for the supervisor; beyond it a webhook is answered 503."""


@attrs.define(kw_only=True)
class _Accepted:
    """What the supervisor keeps of a run it accepted, until the run ends: who asked, where."""

    request: RunRequested
    paths: RunPaths


@attrs.define(kw_only=True)
class Supervisor:
    root: Path
    secrets: Secrets | None
    clock: Clock
    env: Mapping[str, str]
    executor: Sequence[str]
    """The command that starts the executor process, which runs what the supervisor starts
    (given by the CLI: `python -m pit.cli.executor`)."""
    web: WebListener | None = None
    """Starts the webhook listener (given by the CLI, which wires pit.web to the supervisor);
    used only when some DAG has a webhook."""
    stream_output: bool = False
    """Log every line of task output (`pit serve --verbose`)."""
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE
    max_active_runs: int | None = None
    max_queued_runs: int = DEFAULT_MAX_QUEUED_RUNS
    """Accepted runs that may wait for their turn (overlap = "queue", max_active_runs); past
    it a request is refused as busy (a webhook's 503 with Retry-After), never lost later."""

    _workspace: Workspace = attrs.field(init=False)
    _catalog: Catalog = attrs.field(init=False, factory=Catalog)
    """The DAGs served, each as last read well (`actors/catalog.py`)."""
    _admission: Admission = attrs.field(init=False)
    """Which runs wait, which are active: the rules, as data (`actors/admission.py`)."""
    _accepted: dict[str, _Accepted] = attrs.field(init=False, factory=dict)
    """Run id -> its request and folder, for every run the admission holds."""
    _triggers: Triggers = attrs.field(init=False)
    _send: trio.MemorySendChannel[SupervisorInbox] = attrs.field(init=False)
    _executor: ExecutorProcess = attrs.field(init=False)
    _services: trio.Nursery = attrs.field(init=False)
    _web_stop: trio.Event = attrs.field(init=False, factory=trio.Event)
    _grace_timer: trio.CancelScope = attrs.field(init=False, factory=trio.CancelScope)
    _web_port: int | None = attrs.field(init=False, default=None)
    _tokens: WebhookTokens = attrs.field(init=False, factory=WebhookTokens)
    _stopping: trio.Event = attrs.field(init=False, factory=trio.Event)
    """Set with the admission's stop: the web listener answers 503 from then on."""

    def __attrs_post_init__(self) -> None:
        self._admission = Admission(
            max_active_runs=self.max_active_runs, max_queued_runs=self.max_queued_runs
        )

    @property
    def stopping(self) -> bool:
        return self._admission.stopping

    # --- the actor ------------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[SupervisorHandle] = trio.TASK_STATUS_IGNORED
    ) -> None:
        send, inbox = trio.open_memory_channel[SupervisorInbox](INBOX_SIZE)
        self._send = send
        self._workspace = load_workspace(self.root)
        self._adopt(self._workspace, first=True)
        for record in await trio.to_thread.run_sync(
            settle_dead_runs, self._workspace.runs_dir, self.clock.now()
        ):
            log.warning("%s: %s; recorded as failed", record.run_id, record.error)
        self._executor = ExecutorProcess(
            command=self.executor,
            setup=ExecutorSetup(
                env=self.env, secrets=self.secrets, stream_output=self.stream_output
            ),
            supervisor=send.clone(),
            clock=self.clock,
        )
        async with trio.open_nursery() as executor:
            await executor.start(self._executor.run)
            async with trio.open_nursery() as services:
                self._services = services
                self._triggers = Triggers(
                    root=self.root,
                    secrets=self.secrets,
                    clock=self.clock,
                    supervisor=send,
                    nursery=services,
                )
                self._triggers.start(self._catalog.dags(), self._workspace.runs_dir, first=True)
                await self._start_web_if_needed()
                task_status.started(SupervisorHandle(inbox=send.clone(), web_port=self._web_port))
                log.info("serving %s from %s", plural(len(self._catalog), "DAG"), self.root)
                async with inbox:
                    while not (self.stopping and self._admission.idle):
                        await self._handle(await inbox.receive())
                # The runs are over: the listener shuts down (it answered 503 until now), the
                # rest of the services are cancelled.
                self._web_stop.set()
                self._grace_timer.cancel()
                services.cancel_scope.deadline = trio.current_time() + WEB_SHUTDOWN
            self._executor.close()
        log.info("stopped")

    async def _handle(self, message: SupervisorInbox) -> None:
        """One message; a pit bug in handling it is logged and ends nothing else."""
        try:
            await self._dispatch(message)
        except Exception:
            log.exception("pit bug while handling %s; pit serve goes on", type(message).__name__)
            if isinstance(message, RunRequested) and message.reply is not None:
                with contextlib.suppress(
                    trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError
                ):
                    message.reply.send_nowait(
                        RunRejected(reason="busy", message="internal error in pit; see its log")
                    )

    async def _dispatch(self, message: SupervisorInbox) -> None:
        match message:
            case RunRequested():
                await self._request(message)
            case RunEnded():
                self._ended(message)
            case Reload():
                self._reload()
            case Stop(now=now):
                await self._stop(now=now)
            case _:
                assert_never(message)

    # --- requests and runs ----------------------------------------------------------------

    async def _request(self, request: RunRequested) -> None:
        answer = self._decide(request)
        if request.reply is not None:
            # A webhook client that hung up has closed its end; the run goes ahead anyway.
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await request.reply.send(answer)

    def _decide(self, request: RunRequested) -> RunRequestAnswer:
        project = self._catalog.get(request.dag)
        dag = project.dag if project is not None else None
        verdict = self._admission.consider(request.dag, dag.overlap if dag else None)
        if isinstance(verdict, Refuse):
            return _rejected(request, verdict.reason, verdict.message)
        assert dag is not None
        try:
            paths = claim_run_dir(self._workspace.runs_dir, dag.name, self.clock.now())
        except RunError as exc:
            return _rejected(request, "busy", str(exc))
        self._accepted[paths.run_id] = _Accepted(request=request, paths=paths)
        start = self._admission.admit(paths.run_id, dag.name, dag.overlap)
        if start is None:
            log.info("%s %s: waits for its turn", dag.name, paths.run_id)
        else:
            self._start(start)
        return RunAccepted(run_id=paths.run_id)

    def _start(self, start: Start) -> None:
        accepted = self._accepted[start.run_id]
        request, paths = accepted.request, accepted.paths
        project = self._catalog.get(request.dag)
        if project is None or project.dag is None:  # removed by a reload while it waited
            why = "the DAG was removed from the workspace before the run started"
            self._services.start_soon(self._never_started, start.run_id, why)
            return
        run = plan_run(
            project,
            self._workspace,
            trigger=request.trigger,
            scheduled_time=request.scheduled_time,
            seed_files=request.seed_files,
        )
        self._executor.execute(run, paths)

    def _ended(self, ended: RunEnded) -> None:
        accepted = self._accepted.pop(ended.run_id, None)
        if accepted is not None:
            _tell_ended(accepted.request, ended)
        for start in self._admission.ended(ended.run_id):
            self._start(start)

    # --- stopping and reloading ----------------------------------------------------------

    async def _stop(self, *, now: bool) -> None:
        if not self.stopping:
            self._stopping.set()  # the listener answers 503 from now on, until pit returns
            self._triggers.stop_all()
            for drop in self._admission.stop():
                await self._never_started(drop.run_id, "pit serve stopped before it started")
            running = len(self._admission.active_runs())
            if running and not now:
                log.info(
                    "stopping: %d active %s %.0fs to finish",
                    running,
                    "run gets" if running == 1 else "runs get",
                    self.shutdown_grace,
                )
                self._services.start_soon(self._stop_runs_after_grace, self._grace_timer)
        if now:
            self._cancel_runs(kill=True)

    async def _stop_runs_after_grace(self, timer: trio.CancelScope) -> None:
        with timer:
            await trio.sleep(self.shutdown_grace)
            log.info("shutdown grace is over: stopping the active runs")
            self._cancel_runs(kill=False)

    async def _never_started(self, run_id: str, why: str) -> None:
        """An accepted run that will not start still ends with a truthful run.json."""
        accepted = self._accepted.pop(run_id)
        request, paths = accepted.request, accepted.paths
        project = self._catalog.get(request.dag)
        tasks = tuple(t.name for t in project.dag.tasks) if project and project.dag else ()
        log.info("%s %s: cancelled: %s", request.dag, run_id, why)
        record = never_started(paths, request.dag, request.trigger, tasks, why, self.clock.now())
        with contextlib.suppress(OSError):  # a full disk: the log line above is all there is
            await trio.to_thread.run_sync(write_manifest, paths, record)
        _tell_ended(request, RunEnded(record=record))
        for start in self._admission.ended(run_id):
            self._start(start)

    def _cancel_runs(self, *, kill: bool) -> None:
        for run_id in self._admission.active_runs():
            self._executor.cancel(run_id, kill=kill)

    def _reload(self) -> None:
        try:
            workspace = load_workspace(self.root)
        except PitError as exc:  # a broken workspace must not stop the server
            log.error("reload failed, keeping the running configuration: %s", exc)
            return
        except Exception:  # a bug reading it: no input may stop the server either
            log.exception("reload failed, keeping the running configuration")
            return
        if workspace.config_problems:
            for problem in workspace.config_problems:
                log.error("%s (reload skipped: keeping the running configuration)", problem)
            return
        self._workspace = workspace
        self._adopt(workspace, first=False)
        self._services.start_soon(self._restart_triggers)

    def _adopt(self, workspace: Workspace, *, first: bool) -> None:
        adopted = self._catalog.adopt(workspace, first=first)
        for problem in adopted.problems:
            log.error("%s", problem)
        for name in adopted.removed:
            log.info("%s: removed from the workspace; its triggers stop", name)
        tokens, unreadable = self._catalog.webhook_tokens(self.secrets)
        for why in unreadable:
            log.error("%s", why)
        self._tokens.by_dag = tokens  # one new snapshot for the listener

    async def _restart_triggers(self) -> None:
        self._triggers.stop_changed(self._catalog.dag)
        self._triggers.start(self._catalog.dags(), self._workspace.runs_dir, first=False)
        try:
            await self._start_web_if_needed()
        except PitError as exc:  # e.g. the port is taken now: the rest keeps serving
            log.error("webhook listener not started: %s", exc)
        log.info("reloaded: %s", plural(len(self._catalog), "DAG"))

    # --- the webhook listener --------------------------------------------------------------

    async def _start_web_if_needed(self) -> None:
        if self._web_port is not None or self.stopping:
            return
        if self.web is None or not any(dag.webhook for dag in self._catalog.dags()):
            return
        handle = WebHandle(inbox=self._send.clone(), tokens=self._tokens, stopping=self._stopping)
        self._web_port = await self._services.start(self.web, handle, self._web_stop)
        log.info("webhooks on port %d: POST /webhook/<dag>", self._web_port)


def _rejected(request: RunRequested, reason: RejectReason, message: str) -> RunRejected:
    log.info("%s: not started (%s trigger): %s", request.dag, request.trigger, message)
    return RunRejected(reason=reason, message=message)


def _tell_ended(request: RunRequested, ended: RunEnded) -> None:
    """Tell the requester how its run ended, if it asked (its channel is buffered)."""
    if request.ended is not None:
        # A requester that went away (a restarted trigger) must not bring pit down.
        with contextlib.suppress(
            trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError
        ):
            request.ended.send_nowait(ended)
