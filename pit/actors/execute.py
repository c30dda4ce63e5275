"""One whole run: prepare its folder and snapshot, run the DAG, record it, apply retention.

Used by `pit run` and, later, by the scheduler for every triggered run.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

import attrs
import trio

from pit.actors.manifest import ManifestWriter
from pit.actors.run import RunActor, RunHandle
from pit.clock import Clock
from pit.errors import RunError
from pit.messages.run import RunEvent, RunRecord, RunRequest
from pit.messages.task import TaskOutput
from pit.runners.command import RunPlace, build_launch, run_env
from pit.spec.states import RunState
from pit.store.rundir import (
    RunPaths,
    apply_retention,
    create_run_dir,
    snapshot_project,
    write_manifest,
)


@attrs.frozen(kw_only=True)
class StartedRun:
    handle: RunHandle
    paths: RunPaths


async def execute_run(
    request: RunRequest,
    *,
    clock: Clock,
    env: Mapping[str, str],
    observers: Sequence[trio.MemorySendChannel[RunEvent]] = (),
    output: trio.MemorySendChannel[TaskOutput] | None = None,
    task_status: trio.TaskStatus[StartedRun] = trio.TASK_STATUS_IGNORED,
) -> RunRecord:
    """Run the request to its end and return its final record. Starts (via `task_status`) once the
    run's folder exists and the run actor is ready to take commands such as CancelRun."""
    started = clock.now()
    paths = await trio.to_thread.run_sync(
        create_run_dir, request.runs_dir, request.dag.name, started
    )
    # Unbounded: the writer folds queued events into one write (see ManifestWriter).
    to_writer, writer_inbox = trio.open_memory_channel[RunEvent](math.inf)
    actor = RunActor(
        dag=request.dag,
        run_id=paths.run_id,
        trigger=request.trigger,
        launch=functools.partial(
            build_launch,
            RunPlace(
                run_id=paths.run_id,
                dag=request.dag,
                source_dir=request.source_dir,
                snapshot_dir=paths.project,
                data_dir=paths.data,
                env=run_env(env, paths.run_id, request.dag.name, paths.data),
            ),
        ),
        logs_dir=paths.logs,
        clock=clock,
        observers=(to_writer, *observers),
        output=output,
        max_active=request.max_active,
        only_task=request.only_task,
        grace=request.grace,
    )
    try:
        await trio.to_thread.run_sync(snapshot_project, request.source_dir, paths)
    except RunError as exc:
        failed = attrs.evolve(
            actor.record,
            state=RunState.FAILED,
            started_at=started,
            ended_at=clock.now(),
            error=str(exc),
        )
        await trio.to_thread.run_sync(write_manifest, paths, failed)
        raise
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ManifestWriter(paths=paths, events=writer_inbox).run)
        handle = await nursery.start(actor.run)
        task_status.started(StartedRun(handle=handle, paths=paths))
    await trio.to_thread.run_sync(apply_retention, paths, request.keep_artifacts)
    return actor.record
