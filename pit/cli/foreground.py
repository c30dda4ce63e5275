"""`pit run`'s foreground supervision: the run, its view, and the signals that stop it."""

from __future__ import annotations

import functools
import gc
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import trio

from pit.actors.broker import SocketFolder
from pit.actors.execute import StartedRun, execute_run
from pit.actors.guard import RunGuard
from pit.actors.orphans import adopt_orphans, end_escapees
from pit.actors.store import StoreWriter
from pit.cli.signals import forward_signals
from pit.cli.view import View, make_view
from pit.clock import SystemClock
from pit.errors import single_pit_error
from pit.messages.run import CancelRun, RunEvent, RunInbox, RunPlan, RunRecord
from pit.messages.task import TaskOutput
from pit.remote.clusters import open_clusters
from pit.spec.secrets import Secrets
from pit.store.rundir import RunPaths, cancel_note

_VIEW_BUFFER = 256
"""Events a view may fall behind by before the run waits for it (bounds memory on chatty tasks)."""


def run_in_foreground(
    request: RunPlan, secrets: Secrets | None, *, stream_output: bool, store: Path
) -> RunRecord:
    """Run the plan to its end, its records indexed in the run store at `store`."""
    # The objects made so far (imported modules, the specs) live as long as the process: keep
    # the cyclic collector from walking them again on every collection.
    gc.freeze()
    adopt_orphans()  # a task's processes that leave its group are re-parented to pit
    try:
        with RunGuard.start() as guard:  # ends the run's tasks if pit is killed
            view = make_view(stream_output=stream_output)
            writer = StoreWriter(path=store, runs_dir=request.runs_dir)
            return trio.run(_run, request, secrets, view, guard, writer)
    except BaseExceptionGroup as group:
        # A run that cannot start (RunError) arrives wrapped by the nurseries it crossed;
        # unwrap it so the user reads one line, not a traceback.
        error = single_pit_error(group)
        if error is None:
            raise
        raise error from None


async def _run(
    request: RunPlan, secrets: Secrets | None, view: View, guard: RunGuard, store: StoreWriter
) -> RunRecord:
    """Run with the view attached; the first SIGINT/SIGTERM stops gracefully, the second kills."""
    to_view, view_events = trio.open_memory_channel[RunEvent](_VIEW_BUFFER)
    output_send: trio.MemorySendChannel[TaskOutput] | None = None
    output_receive: trio.MemoryReceiveChannel[TaskOutput] | None = None
    if view.stream_output:
        output_send, output_receive = trio.open_memory_channel[TaskOutput](_VIEW_BUFFER)
    records: list[RunRecord] = []
    with SocketFolder.create() as sockets:
        guard.holds(sockets.path)  # a kill -9 of pit must not leave it in /tmp
        async with trio.open_nursery() as nursery:
            nursery.start_soon(view.run, view_events, output_receive)
            nursery.start_soon(store.run)
            try:
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async with open_clusters() as clusters, trio.open_nursery() as run_nursery:

                        async def run_to_end(task_status: trio.TaskStatus[StartedRun]) -> None:
                            records.append(
                                await execute_run(
                                    request,
                                    clock=SystemClock(),
                                    env=os.environ,
                                    secrets=secrets,
                                    sockets=sockets,
                                    observers=(to_view,),
                                    output=output_send,
                                    guard=guard,
                                    store=store,
                                    clusters=clusters,
                                    task_status=task_status,
                                )
                            )
                            run_nursery.cancel_scope.cancel()  # the signal forwarder is done too

                        started = await run_nursery.start(run_to_end)
                        run_nursery.start_soon(
                            functools.partial(
                                _forward_signals, signals, started.handle.inbox, view, started.paths
                            )
                        )
            finally:
                store.close()  # it writes what it holds, then ends
    # Whatever of the run is left, even a process that cleared its environment, ends with it.
    await end_escapees(records[0].run_id, unmarked=True)
    return records[0]


async def _forward_signals(
    signals: AsyncIterator[int],
    inbox: trio.MemorySendChannel[RunInbox],
    view: View,
    paths: RunPaths,
) -> None:
    async def stop(now: bool) -> None:
        view.notice(
            "killing tasks now"
            if now
            else "stopping: tasks get SIGTERM, then SIGKILL after the grace period "
            "(Ctrl-C again to kill now)"
        )
        # `pit cancel` leaves a note of who asked before it signals; Ctrl-C leaves none.
        await inbox.send(CancelRun(kill=now, by=cancel_note(paths)))

    async with inbox:
        await forward_signals(signals, stop=stop)
