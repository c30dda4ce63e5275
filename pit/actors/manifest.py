"""The manifest writer: keeps `run.json` in step with the run's events.

A write serialises the whole run, so writing once per event would cost a 500-task fan-out 1,500
writes. Instead the writer writes at most once per `interval`, folding the events that queued
meanwhile into one write, and writes the end of the run at once. So `run.json` is never more than
`interval` behind the run, and exact when it ends. The first write waits `first_write` after
the writer starts: many runs starting together are not held up by writes of their first state,
and a run still shows in `pit logs` a moment after it starts.
"""

from __future__ import annotations

import contextlib
import errno
import logging

import attrs
import trio

from pit.messages.run import RunEnded, RunEvent, RunInbox, RunRecord, RunTracker, StopRun
from pit.store.rundir import RunPaths, release_reserve, write_manifest

log = logging.getLogger("pit.run")

DEFAULT_INTERVAL = 0.1
FIRST_WRITE = 0.02
"""Seconds before the first write. With 25 runs starting at once, the last reached its first task
after about 57 ms when each wrote at once, 45-50 ms with the first write 20 ms or 100 ms later."""


@attrs.define(kw_only=True)
class ManifestWriter:
    paths: RunPaths
    events: trio.MemoryReceiveChannel[RunEvent]
    """Should be buffered (unbounded): the writer folds whatever queued while it waited."""
    run_inbox: trio.MemorySendChannel[RunInbox] | None = None
    """Told `StopRun` when run.json cannot be written (a full disk, the run folder removed):
    a run that cannot keep its record must not go on as if it could."""
    store: trio.MemorySendChannel[RunRecord] | None = None
    """Told every record written (the run store's writer, `actors/store.py`); closed at the end."""
    interval: float = DEFAULT_INTERVAL
    first_write: float = FIRST_WRITE
    _stop_sent: bool = attrs.field(init=False, default=False)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        # Shielded: after an outer cancellation the run actor still publishes the run's end,
        # and run.json must say so. The run actor always closes the channel, which ends this.
        with trio.CancelScope(shield=True):
            try:
                await self._write_until_closed()
            finally:
                if self.store is not None:
                    self.store.close()

    async def _write_until_closed(self) -> None:
        last_write = trio.current_time() - self.interval + self.first_write
        run = RunTracker()
        async with self.events:
            while True:
                try:
                    event = await self.events.receive()
                except trio.EndOfChannel:
                    return
                run.apply(event)
                # Gather events until the interval is up, or at once when the run has ended.
                ended = isinstance(event, RunEnded)
                with trio.move_on_at(last_write + self.interval):
                    while not ended:
                        try:
                            event = await self.events.receive()
                        except trio.EndOfChannel:
                            break
                        run.apply(event)
                        ended = isinstance(event, RunEnded)
                while True:
                    try:
                        run.apply(self.events.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                await self._write(run.record, final=ended)
                last_write = trio.current_time()

    async def _write(self, record: RunRecord, *, final: bool) -> None:
        """Write run.json. When that fails the run is told to stop (once), and its final write
        gets the disk space held for it (`reserve_space`)."""
        try:
            await trio.to_thread.run_sync(write_manifest, self.paths, record)
            self._index(record)
            return
        except OSError as exc:
            failure = exc
        if final and failure.errno == errno.ENOSPC and release_reserve(self.paths):
            try:
                await trio.to_thread.run_sync(write_manifest, self.paths, record)
                self._index(record)
                return
            except OSError as exc:
                failure = exc
        reason = _reason(self.paths, failure)
        if final:
            log.error("%s: %s; its end is not recorded", self.paths.run_id, reason)
        elif self.run_inbox is not None and not self._stop_sent:
            self._stop_sent = True
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                self.run_inbox.send_nowait(StopRun(reason=reason))  # the inbox is unbounded

    def _index(self, record: RunRecord) -> None:
        """Hand the record just written to the run store's writer (its inbox is unbounded)."""
        if self.store is not None:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                self.store.send_nowait(record)


def _reason(paths: RunPaths, failure: OSError) -> str:
    if failure.errno == errno.ENOSPC:
        return f"disk full: cannot write {paths.manifest}"
    if not paths.root.exists():
        return f"the run folder {paths.root} was removed while the run was going"
    return f"cannot write {paths.manifest}: {failure.strerror or failure}"
