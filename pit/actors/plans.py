"""A run's plan from a project and its workspace: where the workspace's settings meet the DAG's.

One place for `pit run` and `pit serve` alike, so both apply the same rules.
"""

from __future__ import annotations

from typing import Any

from pit.messages.run import RunPlan
from pit.spec.load import Project, Workspace


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
        **given,
    )
