"""`pit serve`: the scheduler, until SIGINT/SIGTERM; SIGHUP reloads every pit.toml."""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import typer

from pit.cli import executor
from pit.cli.context import cli_context
from pit.cli.signals import StopSignals
from pit.errors import single_pit_error
from pit.spec.load import load_secrets


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)


def serve_command(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", help="Webhook listener port.")] = 9090,
    host: Annotated[
        str, typer.Option("--host", help="Webhook listener address (0.0.0.0 for all).")
    ] = "127.0.0.1",
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log every line of task output.")
    ] = False,
    secrets: Annotated[Path | None, typer.Option("--secrets", help="Secrets TOML file.")] = None,
) -> None:
    """Run the scheduler: cron, webhook and FTP-watch triggers, until SIGINT/SIGTERM.

    The first signal stops the triggers and lets active runs finish (within shutdown_grace);
    a second one stops them at once. SIGHUP reloads every pit.toml.
    """
    cli = cli_context(ctx)
    workspace = cli.workspace()
    secrets_path = cli.secrets_path(workspace, secrets)
    loaded = load_secrets(secrets_path) if secrets_path is not None else None
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format=executor.LOG_FORMAT)
    import trio

    from pit.actors.supervisor import Supervisor, SupervisorHandle
    from pit.clock import SystemClock
    from pit.messages.trigger import Reload, Stop, SupervisorInbox

    config = workspace.config
    supervisor = Supervisor(
        root=workspace.root,
        secrets=loaded,
        clock=SystemClock(),
        env=dict(os.environ),
        executor=executor.COMMAND,
        web=functools.partial(_serve_web, host=host, port=port),
        stream_output=verbose or cli.verbose,
        shutdown_grace=config.shutdown_grace,
        max_active_runs=config.max_active_runs,
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
        stops = StopSignals()
        async for signum in signals:
            if signum == signal.SIGHUP:
                await inbox.send(Reload())
            elif (count := stops.take(trio.current_time())) is not None:
                await inbox.send(Stop(now=count > 1))

    try:
        trio.run(serve)
    except BaseExceptionGroup as group:  # e.g. the webhook port is taken: one line, exit 2
        error = single_pit_error(group)
        if error is None:
            raise
        raise error from None


async def _serve_web(
    backend: Any, shutdown: Any, *, host: str, port: int, task_status: Any
) -> None:
    """The webhook listener, wired here because the supervisor (actors) may not import web."""
    from pit.web.app import create_app  # quart and hypercorn: only when a DAG needs them
    from pit.web.serve import serve_app

    await serve_app(
        create_app(backend), host=host, port=port, shutdown=shutdown, task_status=task_status
    )
