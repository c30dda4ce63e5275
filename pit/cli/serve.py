"""`pit serve`: the scheduler, until SIGINT/SIGTERM; SIGHUP reloads every pit.toml."""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from pit.cli import executor
from pit.cli.context import CliContext
from pit.cli.signals import forward_signals
from pit.errors import WorkspaceError, single_pit_error
from pit.spec.dag import DagSpec
from pit.spec.load import Workspace
from pit.spec.problems import plural

if TYPE_CHECKING:  # imported when pit serve starts, not for every command
    import trio

    from pit.messages.web import WebHandle


def serve_command(
    cli: CliContext, *, port: int, host: str, verbose: bool, secrets: Path | None, keep_going: bool
) -> int:
    """`pit serve`, until its signals end it: the exit code."""
    workspace = cli.workspace()
    serving = servable(workspace, keep_going=keep_going)
    loaded = cli.load_secrets(workspace, secrets)
    if loaded is None and (hooked := [d.name for d in serving if d.webhook]):
        print(
            f"pit: no secrets file, so the webhook tokens of {', '.join(hooked)} cannot be read: "
            "their webhooks answer 503 (pass --secrets FILE or set secrets_dir)",
            file=sys.stderr,
        )
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format=executor.LOG_FORMAT)
    import trio

    from pit.actors.supervisor import Supervisor
    from pit.clock import SystemClock
    from pit.messages.trigger import Reload, Stop, SupervisorHandle, SupervisorInbox

    config = workspace.config
    supervisor = Supervisor(
        root=workspace.root,
        secrets=loaded,
        clock=SystemClock(),
        env=dict(os.environ),
        executor=executor.COMMAND,
        web=functools.partial(_serve_web, root=workspace.root, host=host, port=port),
        stream_output=verbose or cli.verbose,
        shutdown_grace=config.shutdown_grace,
        max_active_runs=config.max_active_runs,
        max_queued_runs=config.max_queued_runs,
    )

    async def serve() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
            async with trio.open_nursery() as nursery:

                async def supervise(task_status: trio.TaskStatus[SupervisorHandle]) -> None:
                    await supervisor.run(task_status=task_status)
                    nursery.cancel_scope.cancel()  # the signal forwarder ends with it

                handle = await nursery.start(supervise)
                nursery.start_soon(forward, signals, handle.inbox)

    async def forward(
        signals: AsyncIterator[int], inbox: trio.MemorySendChannel[SupervisorInbox]
    ) -> None:
        async def stop(now: bool) -> None:
            await inbox.send(Stop(now=now))

        async def reload() -> None:
            await inbox.send(Reload())

        await forward_signals(signals, stop=stop, reload=reload)

    try:
        trio.run(serve)
    except BaseExceptionGroup as group:  # e.g. the webhook port is taken: one line, exit 2
        error = single_pit_error(group)
        if error is None:
            raise
        raise error from None
    return 0


def servable(workspace: Workspace, *, keep_going: bool) -> list[DagSpec]:
    """The DAGs pit serve will serve: it refuses to start (exit 2, every problem listed) when a
    project is invalid, unless told to `keep_going`, or when no DAG has a trigger to serve."""
    problems = [problem for project in workspace.projects for problem in project.problems]
    if problems and not keep_going:
        listing = "\n".join(f"  {problem}" for problem in problems)
        raise WorkspaceError(
            f"{plural(len(problems), 'problem')} in the workspace:\n{listing}\n"
            "fix them (see `pit validate`), or pass --keep-going to serve the valid DAGs"
        )
    for problem in problems:
        print(f"pit: {problem} (not served)", file=sys.stderr)
    dags = [p.dag for p in workspace.projects if p.dag is not None and not p.problems]
    triggered = [
        d for d in dags if d.schedule or d.ftp_watch or d.dir_watch or d.webhook or d.after
    ]
    if not triggered:
        raise WorkspaceError(
            "nothing to serve: no valid DAG has a schedule, [dag.ftp_watch], [dag.dir_watch], "
            "[dag.webhook] or [dag.after] (`pit run <dag>` runs one once)"
        )
    return triggered


async def _serve_web(
    handle: WebHandle,
    shutdown: trio.Event,
    *,
    root: Path,
    host: str,
    port: int,
    task_status: trio.TaskStatus[int],
) -> None:
    """The web listener (webhooks, the API), wired here because the supervisor (actors) may
    not import web. While it listens, `.pit/serve.json` says where, for `pit cancel`."""
    import trio

    from pit.store.serving import write_serve_address
    from pit.web.app import create_app
    from pit.web.serve import serve_app

    async with trio.open_nursery() as nursery:
        bound = await nursery.start(
            functools.partial(
                serve_app, create_app(handle), host=host, port=port, shutdown=shutdown
            )
        )
        try:
            written = write_serve_address(root, host, bound)
        except OSError as exc:  # only `pit cancel` misses it: say so, serve on
            logging.getLogger("pit.serve").warning("cannot write .pit/serve.json: %s", exc)
            written = None
        task_status.started(bound)
        try:
            await shutdown.wait()
        finally:
            if written is not None:
                written.unlink(missing_ok=True)
