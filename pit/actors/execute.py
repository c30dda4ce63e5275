"""One whole run: prepare its folder and snapshot, run the DAG, record it, apply retention
(its own artifacts, and then the DAG's older runs).

Used by `pit run` and by pit serve's executor for every triggered run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import math
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from pit.actors.broker import Broker, SocketFolder
from pit.actors.guard import RunGuard
from pit.actors.manifest import ManifestWriter
from pit.actors.notify import Notifier
from pit.actors.pools import Pools
from pit.actors.run import RunActor, RunHandle
from pit.actors.sql import executable
from pit.actors.store import StoreWriter
from pit.clock import Clock
from pit.errors import RunError, leaves
from pit.messages.run import RunEvent, RunPlan, RunRecord
from pit.messages.task import TaskOutput
from pit.remote.clusters import Clusters, RemoteError
from pit.runners.command import RunPlace, build_launch, run_env
from pit.runners.dbt import profile, profiles_folder
from pit.spec.dag import RunnerKind
from pit.spec.defaults import ARTIFACTS
from pit.spec.params import param_values
from pit.spec.secrets import Secrets
from pit.spec.states import RunState
from pit.store.owner import this_process
from pit.store.repos import check_out, git_source, work_tree_commit
from pit.store.retention import apply_retention_policy
from pit.store.rundir import (
    AUDIT_FILE,
    CRASH_LOG,
    RunPaths,
    apply_retention,
    code_version,
    copy_small_project,
    create_run_dir,
    list_small_project,
    make_run_folders,
    prepare_run,
    release_reserve,
    reserve_space,
    settle_abandoned,
    unmet_requirement,
    write_manifest,
)

if TYPE_CHECKING:
    from pit.remote.cluster import DaskCluster, RemoteRun

log = logging.getLogger("pit.run")


@attrs.frozen(kw_only=True)
class StartedRun:
    handle: RunHandle
    paths: RunPaths


async def execute_run(
    plan: RunPlan,
    *,
    clock: Clock,
    env: Mapping[str, str],
    secrets: Secrets | None = None,
    paths: RunPaths | None = None,
    sockets: SocketFolder | None = None,
    pools: Pools | None = None,
    clusters: Clusters | None = None,
    background: trio.Nursery | None = None,
    observers: Sequence[trio.MemorySendChannel[RunEvent]] = (),
    output: trio.MemorySendChannel[TaskOutput] | None = None,
    guard: RunGuard | None = None,
    store: StoreWriter | None = None,
    task_status: trio.TaskStatus[StartedRun] = trio.TASK_STATUS_IGNORED,
) -> RunRecord:
    """Run the plan to its end and return its final record. Starts (via `task_status`) once the
    run's folder exists and the run actor is ready to take commands such as CancelRun.

    `secrets` reach tasks only through the run's SDK broker and SQL tasks, and their sensitive
    values are masked in task output. `paths` is the run's folder when the caller made it
    already (the scheduler does, to answer with the run id at once); `sockets` the folder for
    the SDK socket when the caller keeps one for all its runs; `pools` the pools its runs
    share (else the run's own); `clusters` this process's Dask clusters (its tasks' processes run
    on the plan's, if it names one); `background` where its notifications go on after it ended
    (else it ends once they are delivered); `guard` the guard told of the run, which ends it if this
    process dies; `store` the run store's writer, given each record written to run.json. A
    run that cannot start raises `RunError` (its run.json says why)."""
    started = clock.now()
    if paths is None:
        paths = await trio.to_thread.run_sync(create_run_dir, plan.runs_dir, plan.dag.name, started)
    run = _Run(
        plan=plan,
        paths=paths,
        clock=clock,
        env=env,
        secrets=secrets,
        sockets=sockets,
        pools=pools or Pools(),
        clusters=clusters,
        background=background,
        observers=observers,
        output=output,
        store=store,
    )
    if guard is not None:
        guard.opened(paths)
    try:
        return await _prepare_and_run(run, started, task_status)
    finally:
        if guard is not None:
            guard.closed(paths)


@attrs.frozen(kw_only=True)
class _Run:
    """One run as `execute_run` was given it: its plan, its folder and what surrounds it."""

    plan: RunPlan
    paths: RunPaths
    clock: Clock
    env: Mapping[str, str]
    secrets: Secrets | None
    sockets: SocketFolder | None
    pools: Pools
    clusters: Clusters | None
    background: trio.Nursery | None
    observers: Sequence[trio.MemorySendChannel[RunEvent]]
    output: trio.MemorySendChannel[TaskOutput] | None
    store: StoreWriter | None

    def index(self, record: RunRecord) -> None:
        """Give the run store a record written to run.json here, not by the manifest writer."""
        if self.store is not None:
            self.store.record(record)

    @property
    def workspace(self) -> Path:
        return self.plan.workspace or self.plan.runs_dir.parent


async def _prepare_and_run(
    run: _Run, started: dt.datetime, task_status: trio.TaskStatus[StartedRun]
) -> RunRecord:
    plan, paths = run.plan, run.paths
    try:
        small = None
        if plan.git_clone is None and not plan.seed_files:
            small = list_small_project(plan.source_dir)
        if plan.git_clone is not None:
            code = await _prepare_from_git(plan, paths)
        else:
            if small is not None:  # under a millisecond, its digest too (at most 1 MiB)
                make_run_folders(paths)
                copy_small_project(plan.source_dir, small, paths)
                version = code_version(paths.project)
            else:
                version = await trio.to_thread.run_sync(
                    prepare_run, plan.source_dir, paths, plan.seed_files
                )
            code = _local_code(plan, version)
        dbt_profiles = _dbt_profiles(run)
        cluster = await _cluster(run)
    except RunError as exc:
        failed = RunRecord(
            run_id=paths.run_id,
            dag=plan.dag.name,
            trigger=plan.trigger,
            state=RunState.FAILED,
            started_at=started,
            ended_at=run.clock.now(),
            error=str(exc),
        )
        with contextlib.suppress(OSError):  # a full disk: the error itself says what failed
            await trio.to_thread.run_sync(write_manifest, paths, failed)
            run.index(failed)
        raise
    reserve_space(paths, len(plan.dag.tasks))  # one fallocate on a local disk: no thread hop
    crashed: list[Exception] = []
    handed_over: list[StartedRun] = []
    try:
        with contextlib.ExitStack() as held:  # the dbt profile lives as long as the run
            folder = None
            if dbt_profiles is not None:
                folder = held.enter_context(profiles_folder(dbt_profiles))
            handing = _Handing(task_status, handed_over)
            record = await _run_in_folder(run, handing, code, folder, cluster)
    except* Exception as group:  # a pit bug: it fails this run, and nothing else
        crashed.extend(leaves(group))
    if crashed:
        record = await _record_crash(run, crashed)
        run.index(record)
        if not handed_over:  # it never started: the caller waits on `task_status` in vain
            release_reserve(paths)
            raise RunError(record.error or "internal error")
    release_reserve(paths)  # one local unlink: cheaper than a thread hop
    if not set(ARTIFACTS) <= set(plan.keep_artifacts):
        await trio.to_thread.run_sync(apply_retention, paths, plan.keep_artifacts)
    if plan.retention.active:
        await _prune_older_runs(run)
    return record


async def _prune_older_runs(run: _Run) -> None:
    """The DAG's retention, now that one more of its runs has ended; a failure to remove an
    old run is logged and changes nothing for this one."""
    plan = run.plan
    try:
        pruned = await trio.to_thread.run_sync(
            apply_retention_policy, plan.runs_dir, plan.dag.name, plan.retention, run.clock.now()
        )
    except OSError as exc:
        log.warning("%s: retention of its older runs failed: %s", plan.dag.name, exc)
        return
    if run.store is not None:
        run.store.forget(pruned.removed)


@attrs.frozen
class _Code:
    """What code a run runs, as its record tells it."""

    version: str
    commit: str | None = None
    note: str | None = None


def _local_code(plan: RunPlan, digest: str) -> _Code:
    if plan.code_version is not None:  # a re-run from a snapshot: the old run's code
        old = plan.code_version
        return _Code(
            version=old, commit=old.removeprefix("git:") if old.startswith("git:") else None
        )
    # The commit of the work tree the project is in: a few small reads, no git process.
    return _Code(version=digest, commit=work_tree_commit(plan.source_dir))


async def _prepare_from_git(plan: RunPlan, paths: RunPaths) -> _Code:
    """Fetch a git-backed DAG's clone, check out its ref and snapshot it into the run (with the
    project's own pit.toml); its code version and, when `offline_ok` ran an older checkout, why.
    A failure is a RunError with git's words: the run fails before any task starts."""
    assert plan.git_clone is not None
    checkout = await trio.to_thread.run_sync(check_out, git_source(plan.dag, plan.git_clone))
    if checkout.offline is not None:
        log.warning("%s: running commit %s: %s", plan.dag.name, checkout.commit, checkout.offline)
    await trio.to_thread.run_sync(
        functools.partial(
            prepare_run,
            checkout.path,
            paths,
            plan.seed_files,
            config=plan.source_dir / "pit.toml",
        )
    )
    note = None
    if checkout.offline is not None:
        note = f"offline_ok: ran the last checkout, as the fetch failed: {checkout.offline}"
    return _Code(version=f"git:{checkout.commit}", commit=checkout.commit, note=note)


def _requirements(run: _Run) -> Callable[[], Awaitable[str | None]]:
    """Checks the DAGs the run's DAG requires, in a worker thread (it reads run folders)."""
    plan = run.plan

    async def unmet() -> str | None:
        now = run.clock.now()
        return await trio.to_thread.run_sync(
            unmet_requirement, plan.runs_dir, plan.dag.requires, now
        )

    return unmet


def _dbt_profiles(run: _Run) -> dict[str, Any] | None:
    """The profiles.yml of the run's dbt tasks (None without any); RunError when the
    connection's secret cannot make one."""
    dag = run.plan.dag
    if dag.dbt is None or not any(t.runner.kind is RunnerKind.DBT for t in dag.tasks):
        return None
    return profile(dag, run.secrets, workspace=run.workspace, odbc_driver=run.plan.dbt_driver)


async def _cluster(run: _Run) -> DaskCluster | None:
    """The Dask cluster the run's tasks' processes go to; None: here."""
    if run.clusters is None:
        return None
    try:
        return await run.clusters.get(run.plan.executor)
    except RemoteError as exc:
        raise RunError(str(exc)) from None


def _remote(cluster: DaskCluster | None, run: _Run, source: Path) -> RemoteRun | None:
    """The run's side on `cluster` (None: its tasks run here)."""
    if cluster is None:
        return None
    from pit.remote.cluster import RemoteRun

    return RemoteRun(
        cluster,
        project=run.paths.project,
        source=source,
        data=run.paths.data,
        grace=run.plan.grace,
        stage_data=run.plan.executor.stage_data,
    )


async def _run_in_folder(
    run: _Run,
    task_status: _Handing,
    code: _Code,
    dbt_profiles: Path | None,
    cluster: DaskCluster | None,
) -> RunRecord:
    # Without a background nursery of the caller's, the run's notifications are delivered
    # before it returns (`pit run`'s process must not end first).
    if run.background is not None:
        background = run.background
        return await _run_with_services(run, task_status, code, dbt_profiles, cluster, background)
    async with trio.open_nursery() as notifications:
        return await _run_with_services(
            run, task_status, code, dbt_profiles, cluster, notifications
        )


async def _run_with_services(
    run: _Run,
    task_status: _Handing,
    code: _Code,
    dbt_profiles: Path | None,
    cluster: DaskCluster | None,
    background: trio.Nursery,
) -> RunRecord:
    plan, paths = run.plan, run.paths
    async with trio.open_nursery() as services:
        broker = Broker(
            run_id=paths.run_id,
            project=plan.dag.name,
            secrets=run.secrets,
            data_dir=paths.data,
            workspace=run.workspace,
            audit_path=paths.root / AUDIT_FILE,
            clock=run.clock,
            sockets=run.sockets,
            readable=plan.dag.secret_lists(),
        )
        socket = (await services.start(broker.run)).socket_path
        place = RunPlace(
            run_id=paths.run_id,
            dag=plan.dag,
            # A git-backed DAG's Python tasks keep their venv in its clone (made again only
            # when its lockfile changes), as a local project's keep theirs in the project.
            source_dir=plan.git_clone or plan.source_dir,
            snapshot_dir=paths.project,
            data_dir=paths.data,
            env=run_env(
                run.env,
                paths.run_id,
                plan.dag.name,
                paths.data,
                socket,
                plan.scheduled_time,
                plan.params,
            ),
            workspace=run.workspace,
            secrets=run.secrets,
            dbt_profiles=dbt_profiles,
            params=plan.params,
        )
        # Unbounded: the writer folds queued events into one write (see ManifestWriter).
        to_writer, writer_inbox = trio.open_memory_channel[RunEvent](math.inf)
        notifying: tuple[trio.MemorySendChannel[RunEvent], ...] = ()
        if plan.dag.notify:
            notifier = Notifier(
                dag=plan.dag,
                run_dir=paths.root,
                snapshot=paths.project,
                secrets=run.secrets,
                clock=run.clock,
                env=run.env,
                dashboard_url=plan.dashboard_url,
            )
            # Unbounded too: a notification never holds the run back.
            to_notifier, notifier_inbox = trio.open_memory_channel[RunEvent](math.inf)
            background.start_soon(notifier.run, notifier_inbox)
            notifying = (to_notifier,)
        actor = RunActor(
            dag=plan.dag,
            run_id=paths.run_id,
            trigger=plan.trigger,
            scheduled_time=plan.scheduled_time,
            launch=lambda task, attempt: executable(build_launch(place, task, attempt)),
            logs_dir=paths.logs,
            clock=run.clock,
            observers=(to_writer, *notifying, *run.observers),
            output=run.output,
            max_active=plan.max_active,
            only_task=plan.only_task,
            grace=plan.grace,
            secret_values=frozenset(run.secrets.values()) if run.secrets else frozenset(),
            owner=this_process(),
            rerun_of=plan.rerun_of,
            code_version=code.version,
            code_commit=code.commit,
            code_note=code.note,
            params=param_values(plan.params),
            pools=run.pools,
            remote=_remote(cluster, run, place.source_dir),
            pool_sizes=plan.pool_sizes,
            requirements=_requirements(run) if plan.dag.requires else None,
            reused=plan.reused,
        )
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(actor.run)
            writer = ManifestWriter(
                paths=paths,
                events=writer_inbox,
                run_inbox=handle.inbox,
                store=run.store.inbox() if run.store else None,
            )
            nursery.start_soon(writer.run)
            task_status.started(StartedRun(handle=handle, paths=paths))
        services.cancel_scope.cancel()  # the broker serves this run only
    return actor.record


@attrs.frozen
class _Handing:
    """`task_status`, noting that the run was handed over (so a crash after it is a failed run,
    and one before it a run that could not start)."""

    task_status: trio.TaskStatus[StartedRun]
    handed_over: list[StartedRun]

    def started(self, value: StartedRun) -> None:
        self.handed_over.append(value)
        self.task_status.started(value)


async def _record_crash(run: _Run, crashed: list[Exception]) -> RunRecord:
    """Fail a run that a pit bug ended: the traceback goes to the run's own `pit.log`, the
    record says so, and the tasks it left are settled (the task actors killed their processes
    on the way out)."""
    first, paths = crashed[0], run.paths
    error = f"internal error: {type(first).__name__}: {first} (see {paths.root / CRASH_LOG})"
    text = "".join("".join(traceback.format_exception(exc)) for exc in crashed)
    with trio.CancelScope(shield=True):
        record = await trio.to_thread.run_sync(
            _write_crash, paths, run.plan, error, text, run.clock.now()
        )
    return record


def _write_crash(
    paths: RunPaths, request: RunPlan, error: str, text: str, at: dt.datetime
) -> RunRecord:
    with contextlib.suppress(OSError), (paths.root / CRASH_LOG).open("a", encoding="utf-8") as log:
        log.write(text)
    try:
        return settle_abandoned(paths, request, error, at)
    except OSError:  # a full disk, the folder gone: the record stands, unwritten
        return RunRecord(
            run_id=paths.run_id,
            dag=request.dag.name,
            trigger=request.trigger,
            state=RunState.FAILED,
            ended_at=at,
            error=error,
        )
