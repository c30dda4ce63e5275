"""The manifest writer: keeps `run.json` in step with the run's events.

It writes after every batch of events: when events arrive faster than a write takes, the ones
that queued meanwhile are folded into the next write, so a 500-task fan-out costs a few hundred
writes rather than thousands, and the file is never more than one write behind.
"""

from __future__ import annotations

import attrs
import trio

from pit.messages.run import RunEvent, RunRecord, TaskUpdated
from pit.store.rundir import RunPaths, write_manifest


@attrs.frozen(kw_only=True)
class ManifestWriter:
    paths: RunPaths
    events: trio.MemoryReceiveChannel[RunEvent]
    """Should be buffered (unbounded): the writer folds whatever queued while it was writing."""

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async with self.events:
            closed = False
            while not closed:
                try:
                    latest = _run_of(await self.events.receive())
                except trio.EndOfChannel:
                    break
                while True:
                    try:
                        latest = _run_of(self.events.receive_nowait())
                    except trio.WouldBlock:
                        break
                    except trio.EndOfChannel:
                        closed = True
                        break
                await trio.to_thread.run_sync(write_manifest, self.paths, latest)


def _run_of(event: RunEvent) -> RunRecord:
    return event.run if isinstance(event, TaskUpdated) else event.record
