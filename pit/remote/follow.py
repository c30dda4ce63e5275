"""A task actor's side of a remote attempt: the reports of its runner (`pit.remote.hub`'s
`Link`) made into what a local attempt gives (`AttemptStarted`, the log, the live output)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

import attrs
import trio

from pit.actors.masking import Masker
from pit.clock import Clock
from pit.messages.run import RunInbox
from pit.messages.task import AttemptStarted, TaskOutput
from pit.remote.cluster import CANCEL_WAIT, Submission
from pit.remote.hub import Link, Lost, Report, TaskEnded
from pit.remote.tarballs import STAGE_LIMIT, UnsafeTarball, unpack
from pit.remote.wire import CHUNK, Kind, WireError, fields
from pit.runners.command import Outcome

__all__ = ["CANCEL_WAIT", "KILL_WAIT", "Follow", "Lost"]

KILL_WAIT = 30.0
"""Seconds a remote attempt has to report its end once told to die, before it counts as lost."""
END_WAIT = 30.0
"""Seconds a runner's end may come after Dask says its task ended (they travel apart)."""


@attrs.define(kw_only=True)
class Follow:
    """What a task actor does with the reports of its remote attempt: they become its run's
    messages, its log and its live output, as a local attempt's would."""

    task: str
    run_inbox: trio.MemorySendChannel[RunInbox]
    output: trio.MemorySendChannel[TaskOutput] | None
    secret_values: frozenset[str]
    log: BinaryIO
    started: AttemptStarted
    clock: Clock
    said_started: bool = False
    masker: Masker | None = None
    _staged: _Staged | None = None
    _end_by: float | None = None
    """When Dask said its task ended while the runner was there: its EXIT is due by then."""

    def __attrs_post_init__(self) -> None:
        if self.secret_values:  # the worker masked already; this is pit's own pass
            self.masker = Masker(self.secret_values)

    async def events(self, link: Link, submission: Submission) -> dict[str, Any] | Lost:
        """Follow the attempt until it ends: its EXIT report, or Lost (also when Dask's task
        ended without its runner reaching pit, or with no EXIT from it within `END_WAIT`).
        A stop cancels it (in the caller's scope); it can then be called again."""
        if self._staged is None:
            self._staged = _Staged(link.data_dir)
        while True:
            report: Report | None = None
            if self._end_by is None:
                report = await link.events.receive()
            else:
                with trio.move_on_at(self._end_by):
                    report = await link.events.receive()
                if report is None:  # the runner's end never came after Dask's
                    return Lost(await submission.outcome())
            if isinstance(report, Lost):
                return report
            if isinstance(report, TaskEnded):
                if link.worker is None:  # it could not start, its worker died first, ...
                    return Lost(await submission.outcome())
                self._end_by = trio.current_time() + END_WAIT  # they travel apart
                continue
            kind, payload = report
            if kind is Kind.STARTED:
                await self.say_started(link.worker)
            elif kind is Kind.OUTPUT:
                await self.write(payload)
            elif kind is Kind.DATA:
                if (failed := await self._staged.take(payload)) is not None:
                    return failed  # its data is lost: so is the attempt
            elif kind is Kind.EXIT:
                try:
                    return fields(payload)
                except WireError as exc:
                    return Lost(f"its end was garbled: {exc}")

    async def say_started(self, worker: str | None) -> None:
        """The attempt's start, once: when its process runs (so time waiting on the cluster
        is not running time), on `worker`."""
        if not self.said_started:
            if worker is not None:
                self.log.write(f"pit: on Dask worker {worker}\n".encode())
            at = self.clock.now()
            await self.run_inbox.send(attrs.evolve(self.started, worker=worker, at=at))
            self.said_started = True  # only once told: a stop may cut the send short

    async def write(self, data: bytes) -> None:
        if self.masker is not None:
            data = self.masker.feed(data)
        if data:
            self.log.write(data)
            if self.output is not None:
                await self.output.send(TaskOutput(task=self.task, data=data))

    async def flush(self) -> None:
        if self.masker is not None:
            await self.write(self.masker.flush())
            self.masker = None

    async def failed(self, error: str, worker: str | None = None) -> Outcome:
        await self.flush()
        await self.say_started(worker)
        self.log.write(f"pit: {error}\n".encode())
        return Outcome(exit_code=None, error=error)


@attrs.define
class _Staged:
    """What a runner sends back of a staged data folder: chunks, an empty one ending them, then
    unpacked into the run's data folder before any later report (its EXIT) is taken."""

    data_dir: Path | None
    chunks: list[bytes] = attrs.field(factory=list)
    size: int = 0

    async def take(self, chunk: bytes) -> dict[str, Any] | Lost | None:
        """None, or the end of an attempt whose data cannot be kept."""
        if self.data_dir is None:
            return Lost("its worker sent data back, where none was staged")
        if chunk:
            self.size += len(chunk)
            if self.size > STAGE_LIMIT + CHUNK:  # the tarball's own bytes, a little more
                return Lost(f"its worker sent back more than {STAGE_LIMIT >> 20} MiB of data")
            self.chunks.append(chunk)
            return None
        data, self.chunks, self.size = b"".join(self.chunks), [], 0
        try:
            await trio.to_thread.run_sync(unpack, data, self.data_dir, STAGE_LIMIT)
        except (OSError, UnsafeTarball) as exc:
            return {"error": f"cannot keep what the attempt wrote to the run's data folder: {exc}"}
        return None
