"""The triggers of a DAG under `pit serve`: its schedule (`CronTrigger`), its FTP watch
(`FtpWatch`), built from its spec, and run together under one cancel scope, each restarted if a
pit bug ends it, never passing that bug on to the other triggers or the runs."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import attrs
import trio

from pit.actors.cron import CronTrigger
from pit.actors.ftpwatch import FtpWatch
from pit.clock import Clock, zone_of
from pit.connectors.ftp import FtpTarget, ftp_target
from pit.connectors.localdir import local_dir
from pit.connectors.target import ConnectorError
from pit.messages.trigger import SupervisorInbox
from pit.spec.dag import DagSpec
from pit.spec.secrets import SecretNotFound, Secrets
from pit.store.ledger import ledger_path
from pit.store.rundir import last_scheduled

log = logging.getLogger("pit.serve")

Trigger = Callable[[], Awaitable[None]]
"""Starts a fresh trigger actor and runs it: a trigger closes its channel to the supervisor when
it ends, so one restarted after a bug must be a new one."""

TRIGGER_RESTART = 1.0
MAX_TRIGGER_RESTART = 60.0
"""Seconds before a trigger that failed is started again: doubling from 1 s up to a minute."""


@attrs.define(kw_only=True)
class Triggers:
    """The running triggers of the DAGs served, each DAG's under one cancel scope: started at
    start-up, restarted for the DAGs a reload changed, cancelled when pit stops."""

    root: Path
    secrets: Secrets | None
    clock: Clock
    supervisor: trio.MemorySendChannel[SupervisorInbox]
    nursery: trio.Nursery
    """Where the triggers run (the supervisor's services)."""
    _running: dict[str, tuple[DagSpec, trio.CancelScope]] = attrs.field(factory=dict)

    def start(self, dags: Iterable[DagSpec], runs_dir: Path, *, first: bool) -> None:
        """Start the triggers of each DAG not running them yet (as it is now); `first` at
        start-up, when an FTP watch settles what the last pit left."""
        for dag in dags:
            if dag.name in self._running:
                continue
            scope = trio.CancelScope()
            self._running[dag.name] = (dag, scope)
            triggers = dag_triggers(
                dag,
                root=self.root,
                runs_dir=runs_dir,
                secrets=self.secrets,
                clock=self.clock,
                supervisor=self.supervisor,
                recover=first,
            )
            if triggers:
                self.nursery.start_soon(run_triggers, scope, dag.name, triggers)

    def stop_changed(self, current: Callable[[str], DagSpec | None]) -> None:
        """Cancel the triggers of every DAG whose spec is not `current(name)` any more."""
        for name, (dag, scope) in list(self._running.items()):
            if current(name) != dag:
                del self._running[name]
                scope.cancel()

    def stop_all(self) -> None:
        for _, scope in self._running.values():
            scope.cancel()


def dag_triggers(
    dag: DagSpec,
    *,
    root: Path,
    runs_dir: Path,
    secrets: Secrets | None,
    clock: Clock,
    supervisor: trio.MemorySendChannel[SupervisorInbox],
    recover: bool,
) -> list[Trigger]:
    """The DAG's triggers, ready to run; `recover` at start-up, when an FTP watch settles what
    the last pit left. A trigger that cannot be built is logged and left out."""
    watch = _ftp_watch(
        dag,
        root=root,
        runs_dir=runs_dir,
        secrets=secrets,
        clock=clock,
        supervisor=supervisor,
        recover=recover,
    )
    cron = _cron_trigger(dag, runs_dir, clock, supervisor)
    folder = _dir_watch(
        dag, root=root, runs_dir=runs_dir, clock=clock, supervisor=supervisor, recover=recover
    )
    return [t for t in (cron, watch, folder) if t is not None]


async def run_triggers(scope: trio.CancelScope, dag: str, triggers: list[Trigger]) -> None:
    """A DAG's triggers, cancelled together by its one scope (a reload of the DAG)."""
    with scope:
        async with trio.open_nursery() as nursery:
            for trigger in triggers:
                nursery.start_soon(restarting, dag, trigger)


async def restarting(dag: str, trigger: Trigger) -> None:
    """Run a trigger; a bug that ends it is logged and the trigger started again (after a
    growing pause), never passed on to the other triggers or the runs."""
    pause = TRIGGER_RESTART
    while True:
        try:
            await trigger()
            return
        except Exception:
            log.exception("%s: a trigger failed (a pit bug); it restarts in %.0fs", dag, pause)
        await trio.sleep(pause)
        pause = min(pause * 2, MAX_TRIGGER_RESTART)


def _cron_trigger(
    dag: DagSpec,
    runs_dir: Path,
    clock: Clock,
    supervisor: trio.MemorySendChannel[SupervisorInbox],
) -> Trigger | None:
    if not dag.schedule:
        return None
    try:
        tz = zone_of(dag.timezone)
    except (ValueError, OSError) as exc:  # validation should have caught it: keep serving
        log.error("%s: schedule not started: timezone %r: %s", dag.name, dag.timezone, exc)
        return None
    schedule = dag.schedule

    def start() -> Awaitable[None]:
        trigger = CronTrigger(
            dag=dag.name,
            schedule=schedule,
            tz=tz,
            clock=clock,
            supervisor=supervisor.clone(),
            catchup_window=dt.timedelta(seconds=dag.catchup_window) if dag.catchup else None,
            last_fire=functools.partial(last_scheduled, runs_dir, dag.name),
        )
        return trigger.run()

    return start


def _ftp_watch(
    dag: DagSpec,
    *,
    root: Path,
    runs_dir: Path,
    secrets: Secrets | None,
    clock: Clock,
    supervisor: trio.MemorySendChannel[SupervisorInbox],
    recover: bool,
) -> Trigger | None:
    if not dag.ftp_watch:
        return None
    try:
        target = _ftp_target(dag, secrets)
    except (ConnectorError, SecretNotFound) as exc:
        log.error("%s: FTP watch not started: %s", dag.name, exc)
        return None
    spec, starts = dag.ftp_watch, itertools.count()

    def start() -> Awaitable[None]:
        watch = FtpWatch(
            dag=dag.name,
            spec=spec,
            target=target,
            ledger=ledger_path(root, dag.name),
            staging=root / ".pit" / "ftp" / f"{dag.name}.staging",
            runs_dir=runs_dir,
            clock=clock,
            recover=recover and next(starts) == 0,  # a restart after a bug: runs may be active
            supervisor=supervisor.clone(),
        )
        return watch.run()

    return start


def _dir_watch(
    dag: DagSpec,
    *,
    root: Path,
    runs_dir: Path,
    clock: Clock,
    supervisor: trio.MemorySendChannel[SupervisorInbox],
    recover: bool,
) -> Trigger | None:
    """The FTP watch's machinery on a local folder (paths relative to the workspace)."""
    if not dag.dir_watch:
        return None
    spec = attrs.evolve(
        dag.dir_watch,
        directory=str(root / dag.dir_watch.directory),
        archive_dir=str(root / dag.dir_watch.archive_dir) if dag.dir_watch.archive_dir else None,
    )
    starts = itertools.count()

    def start() -> Awaitable[None]:
        watch = FtpWatch(
            dag=dag.name,
            spec=spec,
            trigger="dir",
            local=True,
            connect=local_dir,
            ledger=ledger_path(root, dag.name, "dir"),
            staging=root / ".pit" / "dir" / f"{dag.name}.staging",
            runs_dir=runs_dir,
            clock=clock,
            recover=recover and next(starts) == 0,
            supervisor=supervisor.clone(),
        )
        return watch.run()

    return start


def _ftp_target(dag: DagSpec, secrets: Secrets | None) -> FtpTarget:
    spec = dag.ftp_watch
    assert spec is not None
    if secrets is None:
        raise ConnectorError("no secrets file to read the FTP credentials from")
    return ftp_target(
        secrets.find(dag.name, spec.secret),
        host=spec.host,
        user=spec.user,
        port=spec.port,
        tls=spec.tls,
        protocol=spec.protocol,
    )
