"""A run's task logs for the API's clients: what is on disk, then each new line as it comes.

Everything is read from the run folder (`logs/<task>.log`, `run.json`), so any run can be
followed: one of pit serve's executor, one of a foreground `pit run`. A task's log is its raw
output, with a line `=== attempt N/T at ... ===` before each attempt; that line sets the
attempt of the lines after it.

However many clients follow a run, one `RunFeed` reads it: every `POLL` seconds it reads what
the logs gained (in a worker thread) and every `RECORD_EVERY` polls run.json, and hands each
client the same `Batch`, whose wire forms are made once, by the first client that sends it.
A client joining a feed is first given the lines on disk up to where the feed has read (so it
misses nothing and sees nothing twice), then the feed's batches. A client that falls
`BACKLOG` batches behind is dropped (its stream ends; it may follow again). The feed ends
once the run has ended, after its last lines, or when pit serve stops.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import re
from collections.abc import AsyncGenerator, Callable
from pathlib import Path

import attrs
import trio

from pit.clock import SystemClock
from pit.messages.run import RunRecord
from pit.store.retention import open_log
from pit.store.rundir import RunPaths, dag_of, read_manifest
from pit.web.shapes import log_json, run_with_tasks

POLL = 0.1
"""Seconds between two looks at a live run's logs: a line is served at most this late."""

RECORD_EVERY = 5
"""Polls between two reads of run.json (whether the run has ended)."""

READ_LIMIT = 4 * 1024 * 1024
"""Bytes of one log read at most per poll; a log that grows faster is served over several."""

BACKLOG = 64
"""Batches a client may fall behind (`BACKLOG * POLL` seconds) before it is dropped."""

_ATTEMPT = re.compile(rb"^=== attempt (\d+)/\d+ at .* ===$")


@attrs.frozen(kw_only=True)
class LogLine:
    task: str
    attempt: int
    message: str
    at: dt.datetime | None = None
    """When pit saw the line arrive; None for a line replayed from disk."""


@attrs.define(slots=False)  # cached_property needs a __dict__
class Batch:
    """What one look at a run found: its new whole lines, and its record if it changed."""

    run_id: str
    lines: tuple[LogLine, ...] = ()
    record: RunRecord | None = None

    @property
    def ended(self) -> bool:
        return self.record is not None and self.record.state.terminal

    @functools.cached_property
    def server_sent(self) -> bytes:
        """The original Pit's log stream: an event `log` per line."""
        return "".join(
            f"event: log\ndata: {_dumps(data)}\n\n" for data in self._lines_json()
        ).encode()

    @functools.cached_property
    def websocket(self) -> list[str]:
        """The WebSocket's messages: `run` (the record, when it changed), `logs` (the lines)."""
        messages = []
        if self.record is not None:
            messages.append(_dumps({"event": "run", "data": run_with_tasks(self.record)}))
        if self.lines:
            messages.append(_dumps({"event": "logs", "data": self._lines_json()}))
        return messages

    def _lines_json(self) -> list[dict[str, object]]:
        dag = dag_of(self.run_id)
        return [
            log_json(
                run_id=self.run_id,
                dag=dag,
                task=line.task,
                attempt=line.attempt,
                message=line.message,
                at=line.at,
            )
            for line in self.lines
        ]


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


@attrs.define
class _TaskLog:
    """How far one task's log has been read."""

    offset: int = 0
    attempt: int = 0
    partial: bytes = b""

    @property
    def served(self) -> int:
        """Bytes up to the end of the last whole line handed out."""
        return self.offset - len(self.partial)


@attrs.define
class _Reader:
    """Reads the new lines of every task log of a run (blocking: call from a worker thread)."""

    paths: RunPaths
    logs: dict[str, _TaskLog] = attrs.field(factory=dict)

    def read(self, at: dt.datetime | None, *, final: bool = False) -> list[LogLine]:
        """The whole lines written since the last read; `final` ends each task's last line
        too (the run has ended: nothing will complete it)."""
        lines: list[LogLine] = []
        for task in _tasks(self.paths):
            log = self.logs.setdefault(task, _TaskLog())
            lines += _read_lines(self.paths.log(task), task, log, at, limit=READ_LIMIT)
            if final and log.partial:
                lines.append(_line(task, log, log.partial, at))
                log.partial = b""
        return lines


def _tasks(paths: RunPaths) -> list[str]:
    """The tasks with a log (plain, or archived by retention), by name."""
    try:
        names = os.listdir(paths.logs)
    except OSError:  # not made yet, or the run folder gone
        return []
    return sorted({name.split(".log")[0] for name in names if name.endswith((".log", ".log.gz"))})


def _read_lines(
    path: Path, task: str, log: _TaskLog, at: dt.datetime | None, *, limit: int
) -> list[LogLine]:
    try:
        with open_log(path) as file:  # an ended run's may be archived (compressed)
            file.seek(log.offset)
            data = file.read(limit)
    except OSError:
        return []
    log.offset += len(data)
    *whole, log.partial = (log.partial + data).split(b"\n")
    return [_line(task, log, raw, at) for raw in whole]


def _line(task: str, log: _TaskLog, raw: bytes, at: dt.datetime | None) -> LogLine:
    if (header := _ATTEMPT.match(raw)) is not None:
        log.attempt = int(header[1])
    message = raw.decode("utf-8", "replace").removesuffix("\r")
    return LogLine(task=task, attempt=log.attempt, message=message, at=at)


def replay(paths: RunPaths, upto: dict[str, int] | None, tail: int | None) -> list[LogLine]:
    """The whole lines on disk (of each task: up to byte `upto[task]` when given, the last
    `tail` when given), tasks by name. Blocking."""
    lines: list[LogLine] = []
    for task in _tasks(paths):
        end = None if upto is None else upto.get(task, 0)
        log = _TaskLog()
        found = _read_lines(paths.log(task), task, log, None, limit=-1 if end is None else end)
        if end is None and log.partial:  # a run that has ended: its last line as it is
            found.append(_line(task, log, log.partial, None))
        lines += found[-tail:] if tail else found
    return lines


def read_record(paths: RunPaths) -> RunRecord | None:
    """The run's run.json; None when there is none (yet) or it cannot be read now."""
    try:
        return read_manifest(paths.manifest)
    except (OSError, ValueError, KeyError, TypeError):
        return None


@attrs.define
class RunFeed:
    """One live run, read once for all the clients following it."""

    paths: RunPaths
    record: RunRecord | None
    _reader: _Reader = attrs.field(init=False)
    _clients: set[trio.MemorySendChannel[Batch]] = attrs.field(init=False, factory=set)
    _primed: trio.Event = attrs.field(init=False, factory=trio.Event)
    """Set once the feed has read to the end of the logs as they were when it began; no
    batch goes out before."""

    def __attrs_post_init__(self) -> None:
        self._reader = _Reader(self.paths)

    async def join(
        self,
    ) -> tuple[trio.MemoryReceiveChannel[Batch], dict[str, int], RunRecord | None]:
        """A new client: its channel of batches, where the feed had read each task's log to
        when the client joined (the client replays up to there: every later line comes as a
        batch), and the run's record as the feed last read it."""
        send, receive = trio.open_memory_channel[Batch](BACKLOG)
        self._clients.add(send)
        await self._primed.wait()  # no batch went out meanwhile: what was read is the start
        upto = {task: log.served for task, log in self._reader.logs.items()}
        return receive, upto, self.record

    async def run(self, until: trio.Event) -> None:
        """Read the run until it has ended or `until` is set (or no client is left)."""
        try:
            await trio.to_thread.run_sync(self._reader.read, None)  # what is there: replayed
            self._primed.set()
            polls = 0
            while not until.is_set():
                await trio.sleep(POLL)
                self._clients = {c for c in self._clients if _listened_to(c)}
                if not self._clients:
                    return
                polls += 1
                record = None
                if polls % RECORD_EVERY == 0:
                    now = await trio.to_thread.run_sync(read_record, self.paths)
                    if now is not None and now != self.record:
                        record = self.record = now
                ended = self.record is not None and self.record.state.terminal
                at = SystemClock().now()
                lines = await trio.to_thread.run_sync(
                    functools.partial(self._reader.read, at, final=ended)
                )
                if lines or record is not None:
                    batch = Batch(run_id=self.paths.run_id, lines=tuple(lines), record=record)
                    self._hand_out(batch)
                if ended:
                    return
        finally:
            self._primed.set()
            for client in self._clients:
                client.close()
            self._clients.clear()

    def _hand_out(self, batch: Batch) -> None:
        """Every client gets the same batch; one too far behind, or gone, is let go."""
        for client in list(self._clients):
            try:
                client.send_nowait(batch)
            except (trio.WouldBlock, trio.BrokenResourceError):  # too slow, or gone
                self._clients.discard(client)
                client.close()


@attrs.define
class RunFeeds:
    """The feeds of the runs followed now, by run id."""

    runs_dir: Path
    until: trio.Event
    """Set when pit serve stops: every feed ends."""
    nursery: Callable[[], trio.Nursery]
    """Where feeds run (the app's background nursery, there once the app serves)."""
    _feeds: dict[str, RunFeed] = attrs.field(init=False, factory=dict)

    async def follow(
        self, paths: RunPaths, *, tail: int | None = None
    ) -> AsyncGenerator[Batch, None]:
        """The run's record and its lines on disk (the last `tail` of each task), then, while
        it goes on, a batch per poll that found something; the last batch holds the record of
        the run's end (unless pit serve stops first)."""
        record = await trio.to_thread.run_sync(read_record, paths)
        if record is not None and record.state.terminal:
            lines = await trio.to_thread.run_sync(replay, paths, None, tail)
            yield Batch(run_id=paths.run_id, lines=tuple(lines), record=record)
            return
        feed = self._feeds.get(paths.run_id)
        if feed is None:
            feed = self._feeds[paths.run_id] = RunFeed(paths=paths, record=record)
            self.nursery().start_soon(self._run_feed, feed)
        receive, upto, known = await feed.join()
        async with receive:
            lines = await trio.to_thread.run_sync(replay, paths, upto, tail)
            yield Batch(run_id=paths.run_id, lines=tuple(lines), record=known)
            async for batch in receive:
                yield batch

    async def _run_feed(self, feed: RunFeed) -> None:
        try:
            await feed.run(self.until)
        finally:
            if self._feeds.get(feed.paths.run_id) is feed:
                del self._feeds[feed.paths.run_id]


def _listened_to(client: trio.MemorySendChannel[Batch]) -> bool:
    return client.statistics().open_receive_channels > 0


def run_paths(runs_dir: Path, run_id: str) -> RunPaths | None:
    """The folder of run `run_id` under `runs_dir`; None for an id that could name something
    else (a path, a hidden file)."""
    if not run_id or "/" in run_id or "\0" in run_id or run_id.startswith("."):
        return None
    return RunPaths(root=runs_dir / run_id)
