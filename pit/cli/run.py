"""`pit run <dag>[/<task>]`: run a DAG (or one task of it) now, in the foreground."""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import trio
import typer

from pit.actors.execute import RunRequest, StartedRun, execute_run
from pit.cli.context import cli_context
from pit.cli.view import View, make_view
from pit.clock import SystemClock
from pit.errors import WorkspaceError
from pit.messages.run import CancelRun, RunEvent, RunInbox, RunRecord
from pit.messages.task import TaskOutput
from pit.spec.load import Workspace, load_secrets
from pit.spec.problems import did_you_mean
from pit.spec.states import RunState

EXIT_INTERRUPTED = 130
_VIEW_BUFFER = 256
"""Events a view may fall behind by before the run waits for it (bounds memory on chatty tasks)."""


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)


def run_command(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="DAG name, or dag/task to run one task.")],
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Stream task output live.")
    ] = False,
    secrets: Annotated[Path | None, typer.Option("--secrets", help="Secrets TOML file.")] = None,
) -> None:
    """Run a DAG now. Exit code 0 on success, 1 on failure, 130 if interrupted."""
    cli = cli_context(ctx)
    workspace = cli.workspace()
    request = _request(workspace, target)
    secrets_path = cli.secrets_path(workspace, secrets)
    if secrets_path is not None:
        load_secrets(secrets_path)  # a broken secrets file should stop the run before it starts
    view = make_view(stream_output=verbose or cli.verbose)
    record = trio.run(_run, request, view)
    if record.state is RunState.CANCELLED:
        raise typer.Exit(EXIT_INTERRUPTED)
    raise typer.Exit(0 if record.state is RunState.SUCCESS else 1)


def _request(workspace: Workspace, target: str) -> RunRequest:
    dag_name, _, task_name = target.partition("/")
    project = workspace.find(dag_name)
    if project.problems or project.dag is None:
        listing = "\n".join(f"  {p}" for p in project.problems)
        raise WorkspaceError(f"DAG '{dag_name}' has configuration errors:\n{listing}")
    dag = project.dag
    if dag.git_backed:
        raise WorkspaceError(
            f"DAG '{dag_name}' is git-backed (git_url = {dag.git_url}); this version of pit "
            "validates git-backed DAGs but cannot run them yet"
        )
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
    config = workspace.config
    return RunRequest(
        dag=dag,
        source_dir=project.path.resolve(),
        runs_dir=workspace.resolve(config.runs_dir).resolve(),
        only_task=task_name or None,
        keep_artifacts=dag.keep_artifacts
        if dag.keep_artifacts is not None
        else config.keep_artifacts,
        max_active=min(dag.max_active_tasks, config.max_active_tasks or dag.max_active_tasks),
        grace=config.stop_grace,
    )


async def _run(request: RunRequest, view: View) -> RunRecord:
    """Run with the view attached; the first SIGINT/SIGTERM stops gracefully, the second kills."""
    to_view, view_events = trio.open_memory_channel[RunEvent](_VIEW_BUFFER)
    output_send: trio.MemorySendChannel[TaskOutput] | None = None
    output_receive: trio.MemoryReceiveChannel[TaskOutput] | None = None
    if view.stream_output:
        output_send, output_receive = trio.open_memory_channel[TaskOutput](_VIEW_BUFFER)
    records: list[RunRecord] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(view.run, view_events, output_receive)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as run_nursery:

                async def run_to_end(task_status: trio.TaskStatus[StartedRun]) -> None:
                    records.append(
                        await execute_run(
                            request,
                            clock=SystemClock(),
                            env=os.environ,
                            observers=(to_view,),
                            output=output_send,
                            task_status=task_status,
                        )
                    )
                    run_nursery.cancel_scope.cancel()  # the signal forwarder is done too

                started = await run_nursery.start(run_to_end)
                run_nursery.start_soon(
                    functools.partial(_forward_signals, signals, started.handle.inbox, view)
                )
    return records[0]


async def _forward_signals(
    signals: AsyncIterator[int], inbox: trio.MemorySendChannel[RunInbox], view: View
) -> None:
    async with inbox:
        count = 0
        async for _ in signals:
            count += 1
            view.notice(
                "stopping: tasks get SIGTERM, then SIGKILL after the grace period "
                "(Ctrl-C again to kill now)"
                if count == 1
                else "killing tasks now"
            )
            await inbox.send(CancelRun(kill=count > 1))
