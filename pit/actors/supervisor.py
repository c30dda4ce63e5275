"""The supervisor of `pit serve`: the actor that carries out what its pure parts decide.

- `Catalog` (`actors/catalog.py`): the DAGs served, each as last read well; `Reload` feeds it.
- `AcceptedRuns` (`actors/accepted.py`): the runs accepted, from request to end; its pure
  `Admission` (`actors/admission.py`) decides which requested run starts, waits or is refused.
- `Triggers` (`actors/triggers.py`): the schedules and FTP watches, one cancel scope per DAG.
- `ExecutorProcess`: the process that executes the runs, so busy runs never slow the listener
  and the triggers.

The supervisor owns the configuration (load, reload, the webhook listener's tokens), passes
requests and run ends to `AcceptedRuns`, and on `Stop` ends the triggers, has the waiting runs
recorded as cancelled, and gives active runs `shutdown_grace`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import assert_never

import attrs
import trio

from pit.actors.accepted import AcceptedRuns
from pit.actors.admission import Admission
from pit.actors.catalog import Catalog, api_tokens
from pit.actors.executor_process import ExecutorProcess
from pit.actors.plans import plan_rerun_of, plan_run
from pit.actors.reconcile import recover_runs, settle_dead_runs
from pit.actors.reposync import RepoSync
from pit.actors.store import StoreWriter
from pit.actors.triggers import Triggers
from pit.clock import Clock
from pit.errors import PitError
from pit.messages.executor import ExecutorSetup
from pit.messages.run import RunEnded, RunPlan, RunRecord
from pit.messages.trigger import (
    CancelRequested,
    PauseRequested,
    Reload,
    RunRequested,
    Stop,
    SupervisorHandle,
    SupervisorInbox,
)
from pit.messages.web import Served, ServeMetrics, WebHandle, WebListener
from pit.messages.webhook import RunRejected, RunRequestAnswer
from pit.spec.dag import DagSpec
from pit.spec.load import Workspace, load_workspace
from pit.spec.problems import plural
from pit.spec.secrets import Secrets
from pit.spec.states import RunState
from pit.spec.workspace import DEFAULT_MAX_QUEUED_RUNS, DEFAULT_SHUTDOWN_GRACE
from pit.store.paused import Pause, read_paused_or_warn, set_paused
from pit.store.rundir import after_is_due
from pit.store.runstore import RunStore, store_path

log = logging.getLogger("pit.serve")

WEB_SHUTDOWN = 5.0
"""Seconds the webhook listener gets to close its connections once the last run has ended."""

TRIGGERS_PAUSED = ("cron", "catchup", "ftp", "dir", "webhook", "after")
"""The triggers a paused DAG does not answer; a run asked for by hand (the API) still starts."""

INBOX_SIZE = 256
"""Requests that may wait for the supervisor; beyond it a webhook is answered 503."""


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
    """Starts the web listener, the webhooks and the API (given by the CLI, which wires pit.web
    to the supervisor); None serves no web."""
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
    _runs: AcceptedRuns = attrs.field(init=False)
    """The runs accepted, carried from the request to the end (`actors/accepted.py`)."""
    _triggers: Triggers = attrs.field(init=False)
    _send: trio.MemorySendChannel[SupervisorInbox] = attrs.field(init=False)
    _executor: ExecutorProcess = attrs.field(init=False)
    _services: trio.Nursery = attrs.field(init=False)
    _after_checks: set[str] = attrs.field(init=False, factory=set)
    """DAGs whose `[dag.after]` is being looked at (in a worker thread)."""
    _web_stop: trio.Event = attrs.field(init=False, factory=trio.Event)
    _grace_timer: trio.CancelScope = attrs.field(init=False, factory=trio.CancelScope)
    _web_port: int | None = attrs.field(init=False, default=None)
    _metrics: ServeMetrics = attrs.field(init=False, factory=ServeMetrics)
    _index: StoreWriter = attrs.field(init=False)
    """This process's writer of the run store: the records the supervisor writes (an
    accepted run's first, one that never starts, the end of every run)."""
    _paused: dict[str, Pause] = attrs.field(init=False, factory=dict)
    """The DAGs paused: their triggers do not run (`.pit/paused.json`, kept across restarts)."""
    _served: Served = attrs.field(init=False, factory=Served)
    """What the web listener reads of the configuration, renewed on every reload."""
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
        store = store_path(self._workspace.root, self._workspace.config.metadata_db)
        for record in await trio.to_thread.run_sync(
            _recover, self._workspace.runs_dir, store, self.clock.now()
        ):
            log.warning("%s: %s; recorded as failed", record.run_id, record.error)
        self._index = StoreWriter(path=store, runs_dir=self._workspace.runs_dir)
        self._executor = ExecutorProcess(
            command=self.executor,
            setup=ExecutorSetup(
                env=self.env,
                secrets=self.secrets,
                stream_output=self.stream_output,
                store=store,
                runs_dir=self._workspace.runs_dir,
            ),
            supervisor=send.clone(),
            clock=self.clock,
        )
        async with trio.open_nursery() as executor:
            await executor.start(self._index.run)
            try:
                await executor.start(self._executor.run)
                await self._serve(send, inbox, task_status)
                self._executor.close()
            finally:
                self._index.close()  # it writes shielded: it ends once closed, whatever happened
        log.info("stopped")

    async def _serve(
        self,
        send: trio.MemorySendChannel[SupervisorInbox],
        inbox: trio.MemoryReceiveChannel[SupervisorInbox],
        task_status: trio.TaskStatus[SupervisorHandle],
    ) -> None:
        """The services (triggers, the web) and the inbox, until stopped with no run active."""
        async with trio.open_nursery() as services:
            self._services = services
            self._runs = AcceptedRuns(
                admission=self._admission,
                executor=self._executor,
                clock=self.clock,
                plan=self._plan,
                nursery=services,
                metrics=self._metrics,
                index=self._index.record,
            )
            self._triggers = Triggers(
                root=self.root,
                secrets=self.secrets,
                clock=self.clock,
                supervisor=send,
                nursery=services,
            )
            self._paused = await trio.to_thread.run_sync(read_paused_or_warn, self.root, log.error)
            self._served.paused = frozenset(self._paused)
            self._triggers.start(self._unpaused(), self._workspace.runs_dir, first=True)
            config = self._workspace.config
            if config.sync_interval is not None:
                sync = RepoSync(
                    interval=config.sync_interval,
                    cache=self._workspace.root / config.repo_cache_dir,
                    dags=self._catalog.dags,
                )
                services.start_soon(sync.run)
            await self._start_web()
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

    async def _handle(self, message: SupervisorInbox) -> None:
        """One message; a pit bug in handling it is logged and ends nothing else."""
        try:
            await self._dispatch(message)
            self._metrics.active_runs = len(self._admission.active_runs())
            self._metrics.queued_runs = len(self._admission.waiting_runs())
            self._metrics.executor_restarts = self._executor.restarts
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
            case PauseRequested():
                await self._pause(message)
            case CancelRequested(run_id=run_id, by=by, reply=reply):
                answer = self._runs.cancel_run(run_id, by)
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await reply.send(answer)
            case RunEnded(record=record):
                self._runs.ended(message)
                if record.state is RunState.SUCCESS:
                    self._start_after(record.dag)
            case Reload():
                self._reload()
            case Stop(now=now):
                await self._stop(now=now)
            case _:
                assert_never(message)

    # --- requests and runs ----------------------------------------------------------------

    async def _request(self, request: RunRequested) -> None:
        dag = self._catalog.dag(request.dag)
        answer: RunRequestAnswer
        if request.trigger in TRIGGERS_PAUSED and request.dag in self._paused:
            message = f"{request.dag} is paused (`pit resume {request.dag}`)"
            log.info("%s: not started (%s trigger): paused", request.dag, request.trigger)
            answer = RunRejected(reason="paused", message=message)
        elif request.rerun is not None and isinstance(why := self._plan(request), str):
            answer = RunRejected(reason="invalid", message=why)
        else:
            answer = self._runs.request(request, dag, self._workspace.runs_dir)
        if request.reply is not None:
            # A webhook client that hung up has closed its end; the run goes ahead anyway.
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await request.reply.send(answer)

    def _plan(self, request: RunRequested) -> RunPlan | str:
        """The plan of a requested run from the DAGs served now, or why it cannot start."""
        project = self._catalog.get(request.dag)
        if project is None or project.dag is None:
            return "the DAG was removed from the workspace before the run started"
        if request.rerun is not None:
            try:  # reads the run re-run's run.json and snapshot: a few small files
                return plan_rerun_of(request.rerun, self._workspace, trigger=request.trigger)
            except PitError as exc:  # no such run, no snapshot, nothing failed...
                return str(exc)
        return plan_run(
            project,
            self._workspace,
            trigger=request.trigger,
            scheduled_time=request.scheduled_time,
            seed_files=request.seed_files,
        )

    # --- DAGs started by others' success ([dag.after]) -----------------------------------------

    def _start_after(self, succeeded: str) -> None:
        """A run of `succeeded` succeeded: each DAG waiting for it (`[dag.after]`) is asked for
        a run once every DAG it waits for has succeeded since its own last run."""
        for dag in self._catalog.dags():
            waits = dag.after is not None and succeeded in dag.after.dags
            if waits and dag.after and dag.name not in self._after_checks:  # one look at a time
                self._after_checks.add(dag.name)
                self._services.start_soon(self._request_after, dag.name, dag.after.dags)

    async def _request_after(self, dag: str, after: tuple[str, ...]) -> None:
        runs_dir = self._workspace.runs_dir
        try:
            due = await trio.to_thread.run_sync(after_is_due, runs_dir, dag, after)
            if due:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await self._send.send(RunRequested(dag=dag, trigger="after"))
        except OSError as exc:  # the runs folder unreadable now: the next success looks again
            log.warning("%s: cannot tell whether [dag.after] is due: %s", dag, exc)
        finally:
            self._after_checks.discard(dag)

    # --- pausing ---------------------------------------------------------------------------

    async def _pause(self, request: PauseRequested) -> None:
        served = self._catalog.dag(request.dag) is not None
        if served and (request.dag in self._paused) != request.pause:
            pause = Pause(at=self.clock.now(), by=request.by) if request.pause else None
            try:
                self._paused = await trio.to_thread.run_sync(
                    set_paused, self.root, request.dag, pause
                )
            except OSError as exc:  # a full disk: the pause holds until pit serve stops
                log.error("cannot record the pause of %s in .pit/paused.json: %s", request.dag, exc)
                if pause is None:
                    self._paused.pop(request.dag, None)
                else:
                    self._paused[request.dag] = pause
            self._served.paused = frozenset(self._paused)
            log.info(
                "%s: %s by %s", request.dag, "paused" if request.pause else "resumed", request.by
            )
            self._restart_triggers()
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await request.reply.send(served)

    def _unpaused(self) -> list[DagSpec]:
        return [dag for dag in self._catalog.dags() if dag.name not in self._paused]

    def _restart_triggers(self) -> None:
        """Stop the triggers of the DAGs changed or paused; start those of the DAGs served and
        not paused that have none running."""
        self._triggers.stop_changed(
            lambda name: None if name in self._paused else self._catalog.dag(name)
        )
        self._triggers.start(self._unpaused(), self._workspace.runs_dir, first=False)

    # --- stopping and reloading ----------------------------------------------------------

    async def _stop(self, *, now: bool) -> None:
        if not self.stopping:
            self._stopping.set()  # the listener answers 503 from now on, until pit returns
            self._triggers.stop_all()
            running = await self._runs.stop()
            if running and not now:
                log.info(
                    "stopping: %d active %s %.0fs to finish",
                    running,
                    "run gets" if running == 1 else "runs get",
                    self.shutdown_grace,
                )
                self._services.start_soon(self._stop_runs_after_grace, self._grace_timer)
        if now:
            self._runs.cancel(kill=True)

    async def _stop_runs_after_grace(self, timer: trio.CancelScope) -> None:
        with timer:
            await trio.sleep(self.shutdown_grace)
            log.info("shutdown grace is over: stopping the active runs")
            self._runs.cancel(kill=False)

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
        self._restart_triggers()
        log.info("reloaded: %s", plural(len(self._catalog), "DAG"))

    def _adopt(self, workspace: Workspace, *, first: bool) -> None:
        adopted = self._catalog.adopt(workspace, first=first)
        for problem in adopted.problems:
            log.error("%s", problem)
        for name in adopted.removed:
            log.info("%s: removed from the workspace; its triggers stop", name)
        tokens, unreadable = self._catalog.webhook_tokens(self.secrets)
        for why in unreadable:
            log.error("%s", why)
        api = api_tokens(workspace, self.secrets)
        if api.unreadable:
            log.error("the API answers 503 until its token can be read: %s", api.unreadable)
        # One step, no checkpoint: a request sees all of this reload or none of it.
        self._served.dags = {dag.name: dag for dag in self._catalog.dags()}
        self._served.webhook_tokens = tokens
        self._served.api = api

    # --- the web listener: webhooks and the API ------------------------------------------------

    async def _start_web(self) -> None:
        if self.web is None:
            return
        handle = WebHandle(
            inbox=self._send.clone(),
            served=self._served,
            stopping=self._stopping,
            runs_dir=self._workspace.runs_dir,
            store=self._index.path,
            metrics=self._metrics,
        )
        self._web_port = await self._services.start(self.web, handle, self._web_stop)
        if self._served.api.local_only:
            log.info("no api_token in pit_config.toml: the API answers this machine only")
        log.info(
            "listening on port %d: the API at /api, webhooks at /webhook/<dag>", self._web_port
        )


def _recover(runs_dir: Path, store: Path, at: dt.datetime) -> list[RunRecord]:
    """The runs a dead pit left, settled (`recover_runs`); with a store that cannot be opened
    (a newer pit's, a damaged one), by reading every run folder instead."""
    try:
        with RunStore.open(store) as runs:
            return recover_runs(runs_dir, runs, at)
    except Exception as exc:  # StoreError, or sqlite3's (a full disk): the folders still tell
        log.warning("%s; settling the runs of a dead pit from the run folders", exc)
        return settle_dead_runs(runs_dir, at)
