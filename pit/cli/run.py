"""`pit run <dag>[/<task>]`: run a DAG (or one task of it) now, in the foreground."""

from __future__ import annotations

import sys
from pathlib import Path

import attrs

from pit.actors.plans import plan_run
from pit.cli.context import CliContext
from pit.clock import SystemClock, zone_of
from pit.errors import WorkspaceError
from pit.messages.run import RunPlan
from pit.spec.dag import RunnerKind
from pit.spec.load import Workspace
from pit.spec.params import parse_assignments, resolve_params
from pit.spec.problems import did_you_mean
from pit.spec.secrets import Secrets
from pit.spec.states import RunState
from pit.store.runstore import store_path

EXIT_INTERRUPTED = 130


def run_command(
    cli: CliContext,
    *,
    target: str,
    verbose: bool,
    secrets: Path | None,
    params: list[str] | None = None,
) -> int:
    """`pit run`: the exit code, 0 on success, 1 on failure, 130 if interrupted; a param that
    does not fit the DAG (`--param name=value`) stops it before it starts."""
    workspace = cli.workspace()
    request = _request(workspace, target)
    given = parse_assignments(params or [])
    if given or request.dag.params:
        resolved = resolve_params(
            request.dag.params,
            given,
            logical=SystemClock().now(),
            zone=zone_of(request.dag.timezone),
        )
        request = attrs.evolve(request, params=resolved)
    # Read before the run starts: a broken secrets file stops it with the file and key named.
    loaded = cli.load_secrets(workspace, secrets)
    if loaded is None and any(t.runner.kind is RunnerKind.SQL for t in request.dag.tasks):
        print(
            "pit: warning: no secrets file (--secrets or secrets_dir): SQL tasks run in STUB "
            "MODE, logged but not executed",
            file=sys.stderr,
        )
    return run_plan(cli, workspace, request, loaded, verbose=verbose)


def run_plan(
    cli: CliContext, workspace: Workspace, plan: RunPlan, secrets: Secrets | None, *, verbose: bool
) -> int:
    """Run `plan` in the foreground: 0 on success, 1 on failure, 130 if interrupted."""
    # Imported here: trio and the actors are start-up cost that validate, logs and outputs skip.
    from pit.cli.foreground import run_in_foreground

    store = store_path(workspace.root, workspace.config.metadata_db)
    record = run_in_foreground(plan, secrets, stream_output=verbose or cli.verbose, store=store)
    if record.state is RunState.CANCELLED:
        return EXIT_INTERRUPTED
    return 0 if record.state is RunState.SUCCESS else 1


def _request(workspace: Workspace, target: str) -> RunPlan:
    dag_name, slash, task_name = target.partition("/")
    if not dag_name or (slash and not task_name):
        raise WorkspaceError(
            f"'{target}' names no {'task' if dag_name else 'DAG'}: write `pit run <dag>` "
            "for the whole DAG, or `pit run <dag>/<task>` for one task"
        )
    project = workspace.find(dag_name)
    if project.problems or project.dag is None:
        listing = "\n".join(f"  {p}" for p in project.problems)
        raise WorkspaceError(f"DAG '{dag_name}' has configuration errors:\n{listing}")
    for warning in project.warnings:
        print(f"pit: {warning}", file=sys.stderr)
    dag = project.dag
    if task_name:
        names = [t.name for t in dag.tasks]
        if task_name not in names:
            hint = did_you_mean(task_name, names) or f"its tasks: {', '.join(names)}"
            raise WorkspaceError(f"DAG '{dag_name}' has no task '{task_name}' ({hint})")
        deps = dag.task(task_name).depends_on
        if deps:
            print(
                f"pit: warning: running '{task_name}' alone; it depends on {', '.join(deps)}, "
                "which will not run",
                file=sys.stderr,
            )
    return plan_run(project, workspace, only_task=task_name or None)
