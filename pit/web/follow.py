"""A run's task logs as events: what is on disk, then, while the run goes on, each new line.

`follow_run` reads the run folder only (`logs/<task>.log` and `run.json`), so it serves runs of
any process: pit serve's executor, a foreground `pit run`. A task's log is its raw output, with
a line `=== attempt N/T at ... ===` before each attempt; that line sets the attempt of the lines
after it. Files are read in a worker thread, a poll at most every `POLL` seconds.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import AsyncGenerator
from pathlib import Path

import attrs
import trio

from pit.clock import SystemClock
from pit.messages.run import RunRecord
from pit.store.rundir import RunPaths, read_manifest

POLL = 0.1
"""Seconds between two looks at a live run's logs: a line is served at most this late."""

STATE_EVERY = 5
"""Polls between two reads of run.json (whether the run has ended)."""

READ_LIMIT = 4 * 1024 * 1024
"""Bytes of one log read at most per poll; a log that grows faster is served over several."""

_ATTEMPT = re.compile(rb"^=== attempt (\d+)/\d+ at .* ===$")


@attrs.frozen(kw_only=True)
class LogLine:
    task: str
    attempt: int
    message: str
    at: dt.datetime | None
    """When pit saw the line arrive; None for a line replayed from disk."""

    @property
    def level(self) -> str:
        """The original Pit's guess from the text: error, warn or info."""
        upper = self.message.upper()
        if upper.startswith("ERROR") or "TRACEBACK" in upper:
            return "error"
        if upper.startswith(("WARNING", "WARN:")):
            return "warn"
        return "info"


@attrs.frozen(kw_only=True)
class RunChanged:
    """run.json changed: the run's record as it is now (it has ended when its state is)."""

    record: RunRecord


FollowEvent = LogLine | RunChanged


@attrs.define
class _TaskLog:
    """How far one task's log has been read."""

    offset: int = 0
    attempt: int = 0
    partial: bytes = b""


@attrs.define
class _Reader:
    """Reads the new lines of every task log of a run (blocking: call from a worker thread)."""

    paths: RunPaths
    logs: dict[str, _TaskLog] = attrs.field(factory=dict)

    def replay(self, tail: int | None) -> list[LogLine]:
        """Every whole line on disk now (the last `tail` of each task's), tasks by name."""
        lines: list[LogLine] = []
        for task in self._tasks():
            found = self._read(task, live=None)
            lines += found[-tail:] if tail else found
        return lines

    def new_lines(self, at: dt.datetime, *, final: bool = False) -> list[LogLine]:
        """The whole lines written since the last read; `final` ends each task's last line
        too (the run has ended: nothing will complete it)."""
        lines: list[LogLine] = []
        for task in self._tasks():
            lines += self._read(task, live=at)
            log = self.logs[task]
            if final and log.partial:
                lines.append(self._line(task, log, log.partial, at))
                log.partial = b""
        return lines

    def _tasks(self) -> list[str]:
        try:
            names = os.listdir(self.paths.logs)
        except OSError:  # not made yet, or the run folder gone
            return []
        return sorted(name[: -len(".log")] for name in names if name.endswith(".log"))

    def _read(self, task: str, *, live: dt.datetime | None) -> list[LogLine]:
        log = self.logs.setdefault(task, _TaskLog())
        try:
            with open(self.paths.log(task), "rb") as file:
                file.seek(log.offset)
                data = file.read(READ_LIMIT)
        except OSError:
            return []
        log.offset += len(data)
        *whole, log.partial = (log.partial + data).split(b"\n")
        return [self._line(task, log, raw, live) for raw in whole]

    @staticmethod
    def _line(task: str, log: _TaskLog, raw: bytes, at: dt.datetime | None) -> LogLine:
        if (header := _ATTEMPT.match(raw)) is not None:
            log.attempt = int(header[1])
        message = raw.decode("utf-8", "replace").removesuffix("\r")
        return LogLine(task=task, attempt=log.attempt, message=message, at=at)


def read_record(paths: RunPaths) -> RunRecord | None:
    """The run's run.json; None when there is none (yet) or it cannot be read now."""
    try:
        return read_manifest(paths.manifest)
    except (OSError, ValueError, KeyError, TypeError):
        return None


async def follow_run(
    paths: RunPaths, *, tail: int | None = None, until: trio.Event
) -> AsyncGenerator[FollowEvent, None]:
    """The run's record, its log lines on disk (the last `tail` of each task), and then, while
    the run has not ended, every new line and every change of its record. Ends after the
    record of the run's end, or within `POLL` of `until` being set (pit serve stopping)."""
    reader = _Reader(paths)
    record = await trio.to_thread.run_sync(read_record, paths)
    if record is not None:
        yield RunChanged(record=record)
    for line in await trio.to_thread.run_sync(reader.replay, tail):
        yield line
    polls = 0
    while not until.is_set() and (record is None or not record.state.terminal):
        await trio.sleep(POLL)
        polls += 1
        if polls % STATE_EVERY == 0:
            now = await trio.to_thread.run_sync(read_record, paths)
            if now is not None and now != record:
                ended = now.state.terminal
                # The last lines first: the record of the end closes the stream.
                for line in await _new_lines(reader, final=ended):
                    yield line
                record = now
                yield RunChanged(record=record)
                continue
        for line in await _new_lines(reader):
            yield line


async def _new_lines(reader: _Reader, *, final: bool = False) -> list[LogLine]:
    at = SystemClock().now()
    return await trio.to_thread.run_sync(lambda: reader.new_lines(at, final=final))


def run_paths(runs_dir: Path, run_id: str) -> RunPaths | None:
    """The folder of run `run_id` under `runs_dir`; None for an id that could name something
    else (a path, a hidden file)."""
    if not run_id or "/" in run_id or "\0" in run_id or run_id.startswith("."):
        return None
    return RunPaths(root=runs_dir / run_id)
