"""A run's plan from a project and its workspace: where the workspace's settings meet the DAG's.

One place for `pit run` and `pit serve` alike, so both apply the same rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from pit.clock import SystemClock, zone_of
from pit.errors import RunError
from pit.messages.run import RunPlan, RunRecord
from pit.spec.graph import downstream
from pit.spec.load import Project, Workspace, load_project
from pit.spec.params import ParamError, resolve_params
from pit.spec.retention import Retention
from pit.spec.states import TaskState
from pit.store.rundir import RunPaths, read_manifest

if TYPE_CHECKING:  # `pit run` plans its run before it needs trio, which messages.trigger loads
    from pit.messages.trigger import Rerun


def plan_run(project: Project, workspace: Workspace, **given: Any) -> RunPlan:
    """A run of a valid project, with the workspace's settings applied: the project's
    keep_artifacts over the workspace's, the workspace's max_active_tasks as a cap over the
    DAG's own, its stop_grace and runs_dir. `given` sets the rest (trigger, only_task...)."""
    dag, config = project.dag, workspace.config
    assert dag is not None, "only a project that parsed can run"
    return RunPlan(
        dag=dag,
        source_dir=project.path,
        workspace=workspace.root,
        runs_dir=workspace.runs_dir,
        keep_artifacts=config.keep_artifacts if dag.keep_artifacts is None else dag.keep_artifacts,
        max_active=min(dag.max_active_tasks, config.max_active_tasks or dag.max_active_tasks),
        grace=config.stop_grace,
        retention=Retention(
            keep_runs=dag.keep_runs or config.keep_runs,
            keep_days=dag.keep_days or config.keep_days,
            archive_logs_after=config.archive_logs_after,
        ),
        dbt_driver=config.dbt_driver,
        git_clone=workspace.root / config.repo_cache_dir / dag.name if dag.git_backed else None,
        pool_sizes=config.pools,
        dashboard_url=config.dashboard_url,
        executor=config.executor,
        **given,
    )


def plan_rerun(
    old: RunRecord,
    old_paths: RunPaths,
    workspace: Workspace,
    *,
    tasks: tuple[str, ...] | None = None,
    latest_code: bool = False,
    trigger: str = "manual",
) -> RunPlan:
    """A new run of `old`'s DAG that reuses what `old` did: its tasks that succeeded are
    recorded as such (`reused_from`) and its data/ is carried over; the others run. With
    `tasks`, those tasks and every task downstream of them run, and each other task must have
    succeeded in `old`. The code is `old`'s snapshot unless `latest_code`. Blocking (it reads
    the snapshot's pit.toml); raises RunError saying what stands in the way."""
    if not old.state.terminal:
        raise RunError(f"{old.run_id} has not ended ({old.state.value}): cancel it first")
    source = workspace.find(old.dag).path if latest_code else old_paths.project
    if not (source / "pit.toml").is_file():
        raise RunError(
            f"{old.run_id} kept no snapshot of its project (keep_artifacts): re-run it with "
            "the project as it is now (--latest-code)"
        )
    project = load_project(source)
    if project.dag is None or project.problems:
        listing = "; ".join(str(problem) for problem in project.problems)
        raise RunError(f"the project of {old.run_id} ({source}) does not load: {listing}")
    dag = project.dag
    succeeded = {task.name for task in old.tasks if task.state is TaskState.SUCCESS}
    if tasks is None:
        chosen = {t.name for t in dag.tasks if t.name not in succeeded}
        if not chosen:
            raise RunError(f"every task of {old.run_id} succeeded: name the ones to run again")
    else:
        unknown = [name for name in tasks if name not in {t.name for t in dag.tasks}]
        if unknown:
            raise RunError(f"{dag.name} has no task {', '.join(unknown)}")
        edges = {task.name: task.depends_on for task in dag.tasks}
        chosen = set(tasks).union(*(downstream(edges, name) for name in tasks))
        missing = [t.name for t in dag.tasks if t.name not in chosen | succeeded]
        if missing:
            raise RunError(
                f"{', '.join(missing)} did not succeed in {old.run_id}: name them too, or "
                "re-run from the failure"
            )
    before = {task.name: task for task in old.tasks}
    reused = {
        t.name: attrs.evolve(before[t.name], reused_from=old.run_id)
        for t in dag.tasks
        if t.name not in chosen
    }
    carried = tuple(sorted(old_paths.data.iterdir())) if old_paths.data.is_dir() else ()
    try:  # the old run's values, typed by the DAG as it is now
        logical = old.scheduled_time or old.started_at or old.ended_at or SystemClock().now()
        params = resolve_params(dag.params, old.params, logical=logical, zone=zone_of(dag.timezone))
    except ParamError as exc:
        raise RunError(f"the params of {old.run_id} no longer fit the DAG: {exc}") from None
    plan = plan_run(
        project,
        workspace,
        trigger=trigger,
        rerun_of=old.run_id,
        reused=reused,
        scheduled_time=old.scheduled_time,
        params=params,
    )
    if latest_code:
        return attrs.evolve(plan, seed_files=carried)
    # From the old snapshot: the old code (a git-backed DAG's commit, not fetched again).
    return attrs.evolve(plan, seed_files=carried, git_clone=None, code_version=old.code_version)


def plan_rerun_of(rerun: Rerun, workspace: Workspace, *, trigger: str) -> RunPlan:
    """`plan_rerun` of the run `rerun.of` of `workspace`, read from its run.json."""
    old_paths = RunPaths(root=workspace.runs_dir / rerun.of)
    try:
        old = read_manifest(old_paths.manifest)
    except FileNotFoundError:
        raise RunError(f"no run {rerun.of} under {workspace.runs_dir}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunError(f"cannot read {old_paths.manifest}: {exc}") from exc
    return plan_rerun(
        old,
        old_paths,
        workspace,
        tasks=rerun.tasks,
        latest_code=rerun.latest_code,
        trigger=trigger,
    )
