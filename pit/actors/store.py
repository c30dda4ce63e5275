"""The store writer: the one writer of the run store in a process (`pit run`, pit serve's
executor), fed the records each run's manifest writer has just written to run.json.

It folds what queues while it writes (a run's latest record replaces the earlier ones) and
writes each batch in one transaction from a worker thread, so a burst of runs costs a few
transactions, and the event loop never waits on SQLite. The store is an index: when it cannot
be written (a store of a newer pit, a full disk), runs go on, their run.json is whole, and the
log says so once (`pit store rebuild` catches up).
"""

from __future__ import annotations

import contextlib
import logging
import math
from pathlib import Path

import attrs
import trio

from pit.messages.run import RunRecord, TaskRecord
from pit.store.runstore import Changes, RunStore, StoreError

log = logging.getLogger("pit.store")

BATCH_WAIT = 0.05
"""Seconds the writer gathers records before a write (records of many runs go in one)."""


@attrs.define(kw_only=True)
class StoreWriter:
    path: Path
    runs_dir: Path
    """The runs the store indexes (their run.json are read to catch up, `RunStore.catch_up`)."""
    batch_wait: float = BATCH_WAIT
    _send: trio.MemorySendChannel[RunRecord | Forget] = attrs.field(init=False)
    _receive: trio.MemoryReceiveChannel[RunRecord | Forget] = attrs.field(init=False)
    _warned: bool = attrs.field(init=False, default=False)
    _written: dict[str, tuple[TaskRecord, ...]] = attrs.field(init=False, factory=dict)
    """Run id -> its tasks as last written, for the runs not ended: the next write of the run
    updates only the tasks that changed."""

    def __attrs_post_init__(self) -> None:
        # Unbounded: a run's manifest writer must never wait on the index; what queues is
        # folded to one record per run at the next write.
        self._send, self._receive = trio.open_memory_channel[RunRecord | Forget](math.inf)

    def inbox(self) -> trio.MemorySendChannel[RunRecord | Forget]:
        """A channel for one user (a run's manifest writer), to close when it is done."""
        return self._send.clone()

    def record(self, record: RunRecord) -> None:
        """Index a record written to run.json outside a manifest writer (a run that failed
        before it started, one a pit bug ended)."""
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            self._send.send_nowait(record)

    def forget(self, run_ids: tuple[str, ...]) -> None:
        """Drop runs whose folders retention removed."""
        if run_ids:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                self._send.send_nowait(Forget(run_ids=run_ids))

    def close(self) -> None:
        """No more runs: the writer writes what it holds and ends once every inbox is closed."""
        self._send.close()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        # Shielded: the last records of a run interrupted by a signal still reach the store.
        with trio.CancelScope(shield=True):
            store = await self._open()
            try:
                await self._write_until_closed(store)
            finally:
                if store is not None:
                    await trio.to_thread.run_sync(store.close)

    async def _open(self) -> RunStore | None:
        try:
            store = await trio.to_thread.run_sync(RunStore.open, self.path)
        except StoreError as exc:
            self._warn(str(exc))
            return None
        try:
            await trio.to_thread.run_sync(store.catch_up, self.runs_dir)
        except Exception as exc:  # sqlite3's errors, a full disk: the store stays behind
            self._warn(f"cannot bring the run store {self.path} up to date: {exc}")
        return store

    async def _write_until_closed(self, store: RunStore | None) -> None:
        async with self._receive:
            async for first in self._receive:
                batch: dict[str, RunRecord] = {}
                forgotten: set[str] = set()
                _fold(first, batch, forgotten)
                with trio.move_on_after(self.batch_wait):
                    async for item in self._receive:
                        _fold(item, batch, forgotten)
                while True:
                    try:
                        item = self._receive.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                    _fold(item, batch, forgotten)
                if store is not None:
                    changes = [self._changes(r) for r in batch.values()]
                    await self._write(store, changes, forgotten)

    def _changes(self, record: RunRecord) -> RunRecord | Changes:
        """What to write of `record`: the tasks changed since its last write, or all of it."""
        before = self._written.get(record.run_id)
        if before is None or len(before) != len(record.tasks):
            return record
        # A task the run did not touch is the very record written before: `is` settles most
        # pairs of a large run without comparing their fields.
        changed = [
            i
            for i, (old, new) in enumerate(zip(before, record.tasks, strict=True))
            if old is not new and old != new
        ]
        return Changes(record, frozenset(changed))

    async def _write(
        self, store: RunStore, items: list[RunRecord | Changes], forgotten: set[str]
    ) -> None:
        records = [item.record if isinstance(item, Changes) else item for item in items]

        def write() -> None:
            store.put(items)
            # An ended run's secret accesses: its audit file is complete now.
            store.index_audits(self.runs_dir, [r.run_id for r in records if r.state.terminal])
            if forgotten:
                store.forget(forgotten)

        try:
            await trio.to_thread.run_sync(write)
        except Exception as exc:  # sqlite3's errors, a full disk: the runs go on
            self._warn(f"cannot write the run store {self.path}: {exc}")
            for record in records:  # rolled back: the next write of each run is whole
                self._written.pop(record.run_id, None)
            return
        for record in records:
            if record.state.terminal:
                self._written.pop(record.run_id, None)
            else:
                self._written[record.run_id] = record.tasks

    def _warn(self, why: str) -> None:
        """Say once that the store is behind; the runs' run.json are whole."""
        if not self._warned:
            log.warning("%s; runs go on, recorded in their run.json (`pit store rebuild`)", why)
        self._warned = True


@attrs.frozen(kw_only=True)
class Forget:
    """Runs to drop from the store: retention removed their folders."""

    run_ids: tuple[str, ...]


def _fold(item: RunRecord | Forget, batch: dict[str, RunRecord], forgotten: set[str]) -> None:
    """Add `item` to the batch being gathered: a run's latest record replaces the earlier."""
    if isinstance(item, Forget):
        forgotten.update(item.run_ids)
        for run_id in item.run_ids:
            batch.pop(run_id, None)
    else:
        batch[item.run_id] = item
        forgotten.discard(item.run_id)
