"""`pit backfill <dag> --from DAY --to DAY`: one run per fire time of the DAG's schedule in the
range, each with its own scheduled time (`PIT_SCHEDULED_TIME`, the templates of its params).

The runs go in this process, as `pit run`'s, at most `--max-parallel` at a time, started oldest
first. A fire whose run succeeded already (a backfill interrupted and started again, a cron run)
is skipped, and so is one whose run is still going (pit serve's); a fire whose run failed runs
again. Each run's id is its fire time's, or a millisecond later beside a failed one. Ctrl-C
stops the runs going (a second one kills them) and starts no more: running the same command
again resumes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gc
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import attrs
import trio

from pit.actors.broker import SocketFolder
from pit.actors.execute import StartedRun, execute_run
from pit.actors.guard import RunGuard
from pit.actors.orphans import adopt_orphans
from pit.actors.plans import plan_run
from pit.actors.pools import Pools
from pit.actors.store import StoreWriter
from pit.cli.context import CliContext
from pit.cli.signals import forward_signals
from pit.clock import SystemClock, zone_of
from pit.errors import RunError, WorkspaceError, single_pit_error
from pit.messages.run import CancelRun, RunPlan, RunRecord
from pit.remote.clusters import Clusters, open_clusters
from pit.spec.cron import fires_between
from pit.spec.durations import format_duration
from pit.spec.load import Workspace
from pit.spec.params import parse_assignments, resolve_params
from pit.spec.problems import plural
from pit.spec.secrets import Secrets
from pit.spec.states import RunState
from pit.store.rundir import (
    MANIFEST,
    RunPaths,
    claim_fire_dir,
    claim_run_dir,
    fire_run_id,
    list_run_folders,
    read_manifest,
)
from pit.store.runstore import store_path

MAX_FIRES = 10_000
"""Fire times one backfill may cover: a minutely schedule over a year is a mistake to stop."""
EXIT_INTERRUPTED = 130


@attrs.frozen(kw_only=True)
class Fire:
    at: dt.datetime
    status: str
    """`to run`, `done` (a run of it succeeded) or `running` (a run of it has not ended)."""


def backfill_command(
    cli: CliContext,
    *,
    dag: str,
    start: str,
    end: str,
    max_parallel: int,
    dry_run: bool,
    params: list[str],
    as_json: bool,
) -> int:
    """The exit code: 0 when every fire's run succeeded (or had), 1 when one failed, 130 when
    interrupted, 2 (through PitError) for a range, DAG or param that does not fit."""
    workspace = cli.workspace()
    project = workspace.find(dag)
    spec = project.dag
    assert spec is not None
    if not spec.schedule:
        raise WorkspaceError(f"{dag} has no schedule: a backfill runs its fire times")
    zone = zone_of(spec.timezone)
    first, last = _day(start, zone, "--from"), _day(end, zone, "--to", end_of_day=True)
    if last < first:
        raise WorkspaceError(f"--to {end} is before --from {start}")
    try:
        times = fires_between(spec.schedule, first, last, zone, limit=MAX_FIRES)
    except ValueError as exc:
        raise WorkspaceError(f"{dag}: {exc} from {start} to {end}: narrow the range") from None
    given = parse_assignments(params)
    for fire in times[:1]:  # a param that does not fit stops the backfill before any run
        resolve_params(spec.params, given, logical=fire, zone=zone)
    fires = _statuses(times, list_run_folders(workspace.runs_dir, dag))
    todo = [fire.at for fire in fires if fire.status == "to run"]
    if dry_run:
        _show(fires, as_json)
        return 0
    if not todo:
        print(f"{dag}: all {len(fires)} fire times from {start} to {end} have their runs")
        return 0
    skipped = len(fires) - len(todo)
    print(
        f"{dag}: {plural(len(todo), 'run')} to make from {start} to {end}"
        + (f" ({plural(skipped, 'fire time')} have their runs)" if skipped else "")
        + f", {max_parallel} at a time",
        file=sys.stderr,
    )

    def plan(fire: dt.datetime) -> RunPlan:
        values = resolve_params(spec.params, given, logical=fire, zone=zone)
        return plan_run(project, workspace, trigger="backfill", scheduled_time=fire, params=values)

    secrets = cli.load_secrets(workspace, None)
    records = _run_all(workspace, todo, plan, secrets, max_parallel)
    if as_json:
        print(json.dumps([_record_json(r) for r in records], indent=2))
    failed = [r for r in records if r.state is not RunState.SUCCESS]
    print(
        f"{dag}: {len(records) - len(failed)} of {len(todo)} runs succeeded"
        + (f", {len(failed)} did not" if failed else ""),
        file=sys.stderr,
    )
    if len(records) < len(todo) or any(r.state is RunState.CANCELLED for r in records):
        print("pit: interrupted: run the same command again to go on", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 1 if failed else 0


def _day(text: str, zone: dt.tzinfo, flag: str, *, end_of_day: bool = False) -> dt.datetime:
    """A day (the whole of it) or an ISO datetime, in the DAG's zone."""
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        day = None
    if day is not None and len(text) == 10:
        at = dt.datetime.combine(day, dt.time(), tzinfo=zone)
        return at + dt.timedelta(days=1, microseconds=-1) if end_of_day else at
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        raise WorkspaceError(f"{flag} {text!r}: give a day (2026-11-01) or a time") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=zone)


def _statuses(
    times: list[dt.datetime], runs: list[tuple[RunPaths, RunRecord | None]]
) -> list[Fire]:
    done, running = set(), set()
    for _, record in runs:
        if record is None or record.scheduled_time is None:
            continue
        if record.state is RunState.SUCCESS:
            done.add(record.scheduled_time)
        elif not record.state.terminal:
            running.add(record.scheduled_time)
    return [
        Fire(at=at, status="done" if at in done else "running" if at in running else "to run")
        for at in times
    ]


def _show(fires: list[Fire], as_json: bool) -> None:
    if as_json:
        print(json.dumps([{"fire": f.at.isoformat(), "status": f.status} for f in fires], indent=2))
        return
    for fire in fires:
        print(f"{fire.at.isoformat()}  {fire.status}")
    todo = sum(fire.status == "to run" for fire in fires)
    print(f"{todo} of {len(fires)} fire times would run", file=sys.stderr)


def _record_json(record: RunRecord) -> dict[str, object]:
    return {
        "fire": record.scheduled_time.isoformat() if record.scheduled_time else None,
        "run_id": record.run_id,
        "state": record.state.value,
        "error": record.error,
    }


def _run_all(
    workspace: Workspace,
    fires: list[dt.datetime],
    plan: Callable[[dt.datetime], RunPlan],
    secrets: Secrets | None,
    max_parallel: int,
) -> list[RunRecord]:
    gc.freeze()  # what is loaded now lives as long as the process (see foreground.py)
    adopt_orphans()
    store = StoreWriter(
        path=store_path(workspace.root, workspace.config.metadata_db), runs_dir=workspace.runs_dir
    )
    try:
        with RunGuard.start() as guard:
            backfill = _Backfill(fires=fires, plan=plan, secrets=secrets, guard=guard, store=store)
            trio.run(backfill.run, max_parallel)
            return backfill.records
    except BaseExceptionGroup as group:
        error = single_pit_error(group)
        if error is None:
            raise
        raise error from None


@attrs.define(kw_only=True)
class _Backfill:
    fires: list[dt.datetime]
    plan: Callable[[dt.datetime], RunPlan]
    secrets: Secrets | None
    guard: RunGuard
    store: StoreWriter
    records: list[RunRecord] = attrs.field(factory=list)
    _pools: Pools = attrs.field(factory=Pools)
    """The pools its runs share."""
    _active: dict[str, StartedRun] = attrs.field(factory=dict)
    _stopping: bool = False
    _clusters: Clusters | None = None

    async def run(self, max_parallel: int) -> None:
        send, receive = trio.open_memory_channel[dt.datetime](len(self.fires))
        for fire in self.fires:
            send.send_nowait(fire)
        send.close()
        with SocketFolder.create() as sockets:
            self.guard.holds(sockets.path)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.store.run)
                try:
                    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                        async with trio.open_nursery() as runs:
                            runs.start_soon(
                                functools.partial(forward_signals, signals, stop=self._stop)
                            )
                            async with (
                                open_clusters() as self._clusters,
                                trio.open_nursery() as workers,
                            ):
                                for _ in range(max_parallel):
                                    workers.start_soon(self._worker, receive.clone(), sockets)
                            runs.cancel_scope.cancel()  # the signal forwarder is done too
                finally:
                    self.store.close()

    async def _worker(
        self, fires: trio.MemoryReceiveChannel[dt.datetime], sockets: SocketFolder
    ) -> None:
        async with fires:
            async for fire in fires:
                if self._stopping:
                    return
                plan = self.plan(fire)
                paths = claim_fire_dir(plan.runs_dir, plan.dag.name, fire)
                if paths is None:
                    if not _ended_there(plan.runs_dir, plan.dag.name, fire):
                        print(f"{fire.isoformat()}  skipped: a run of it is going", flush=True)
                        continue  # pit serve's own, say: it runs this fire
                    paths = claim_run_dir(plan.runs_dir, plan.dag.name, fire)  # beside it
                try:
                    record = await self._execute(plan, paths, sockets)
                except RunError as exc:  # it could not start (a git fetch...): this fire only
                    record = _failed(plan, paths, str(exc))
                self._active.pop(record.run_id, None)
                self.records.append(record)
                took = (
                    format_duration((record.ended_at - record.started_at).total_seconds())
                    if record.ended_at and record.started_at
                    else "-"
                )
                print(
                    f"[{len(self.records)}/{len(self.fires)}] {fire.isoformat()}  "
                    f"{record.state.value}  {record.run_id}  {took}"
                    + (f"  {record.error}" if record.error else ""),
                    flush=True,
                )

    async def _execute(self, plan: RunPlan, paths: RunPaths, sockets: SocketFolder) -> RunRecord:
        """Run the plan in `paths`, its handle kept while it runs, for a stop to reach."""
        ended: list[RunRecord] = []

        async def run(task_status: trio.TaskStatus[StartedRun]) -> None:
            ended.append(
                await execute_run(
                    plan,
                    clock=SystemClock(),
                    env=os.environ,
                    secrets=self.secrets,
                    paths=paths,
                    sockets=sockets,
                    pools=self._pools,
                    clusters=self._clusters,
                    guard=self.guard,
                    store=self.store,
                    task_status=task_status,
                )
            )

        async with trio.open_nursery() as nursery:
            started = self._active[paths.run_id] = await nursery.start(run)
            if self._stopping:  # a Ctrl-C while it was starting
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await started.handle.inbox.send(CancelRun())
        return ended[0]

    async def _stop(self, now: bool) -> None:
        self._stopping = True
        print(
            "pit: stopping the runs going"
            + (", killing their tasks now" if now else " (Ctrl-C again to kill them now)"),
            file=sys.stderr,
        )
        for started in list(self._active.values()):
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await started.handle.inbox.send(CancelRun(kill=now))  # unless it just ended


def _ended_there(runs_dir: Path, dag: str, fire: dt.datetime) -> bool:
    """Whether the run already made for `fire` has ended (a failure: run it again beside it),
    rather than going or just being made."""
    try:
        record = read_manifest(runs_dir / fire_run_id(fire, dag) / MANIFEST)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return record.state.terminal


def _failed(plan: RunPlan, paths: RunPaths, error: str) -> RunRecord:
    """The record of a fire's run that could not start, as its run.json says (or this)."""
    try:
        return read_manifest(paths.manifest)
    except (OSError, ValueError, KeyError, TypeError):
        return RunRecord(
            run_id=paths.run_id,
            dag=plan.dag.name,
            trigger=plan.trigger,
            scheduled_time=plan.scheduled_time,
            state=RunState.FAILED,
            error=error,
        )
