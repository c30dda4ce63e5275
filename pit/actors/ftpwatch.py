"""The FTP watch trigger: polls a directory, starts a run with the files that stopped growing,
and archives them once that run succeeded.

Never twice, never lost: a file that started a run is not picked up again while that run is
active; after a failure it is not retried until it changes (size or modification time); the
ledger (`pit.store.ledger`) keeps both across restarts. A server that fails is retried with
backoff; the trigger never takes down the supervisor.

All waiting is on trio's clock (`trio.sleep`, `trio.current_time`), and the server is reached
through `connect` (an `FtpSession` per poll), so tests run the watch on a fake clock against an
in-memory server. `clock` gives wall-clock time for names only.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import posixpath
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import attrs
import trio

from pit.clock import Clock
from pit.connectors.ftp import FtpConnect, FtpSession, FtpTarget, RemoteFile, open_session
from pit.connectors.inotify import FolderChanges
from pit.connectors.target import ConnectorError
from pit.messages.run import RunEnded
from pit.messages.trigger import RunRequested, SupervisorInbox
from pit.messages.webhook import RunAccepted, RunRequestAnswer
from pit.spec.dag import FtpWatchSpec
from pit.spec.states import RunState
from pit.spec.tables import DirWatchSpec
from pit.store.ledger import (
    EntryState,
    LedgerEntry,
    recover_ledger,
    settle_ledger,
    write_ledger,
)
from pit.store.rundir import MANIFEST, read_manifest

log = logging.getLogger("pit.serve")
MAX_BACKOFF = 300.0
"""Seconds: the longest wait between two tries of a server that keeps failing."""


@attrs.define(kw_only=True)
class _Seen:
    size: int
    modified: str | None
    since: float
    """trio time when the file was first seen at this size and time."""


@attrs.frozen(kw_only=True)
class _ActiveRun:
    files: tuple[RemoteFile, ...]
    """The files the run was started with."""
    folder: Path
    """Their staging folder, removed when the run ends."""


def _client_for_target(watch: FtpWatch) -> FtpConnect:
    if watch.target is None:
        raise TypeError("an FtpWatch needs a target or a connect")
    return functools.partial(open_session, watch.target)


@attrs.define(kw_only=True)
class FtpWatch:
    dag: str
    spec: FtpWatchSpec | DirWatchSpec
    trigger: str = "ftp"
    """What its runs are recorded as started by: `ftp`, or `dir` for a folder."""
    local: bool = False
    """The folder is on this machine: its changes (inotify) end the wait between polls early."""
    target: FtpTarget | None = None
    """The server, for the default `connect`; not read when `connect` is given."""
    connect: FtpConnect = attrs.field(default=attrs.Factory(_client_for_target, takes_self=True))
    """Opens one session with the server (closed with `aclose`); by default a real
    session with `target` (FTP, FTPS or SFTP)."""
    ledger: Path
    staging: Path
    """Where files are downloaded before their run copies them into its data/."""
    runs_dir: Path
    """Where the runs' run.json tell how runs the ledger still calls running ended."""
    clock: Clock
    """Wall-clock time, for the names of staging folders; waiting uses trio's clock."""
    recover: bool = True
    """Settle what the last pit left (at start); False when a reload restarts the watch while
    runs it started may still be active or waiting."""
    supervisor: trio.MemorySendChannel[SupervisorInbox]
    _entries: dict[str, LedgerEntry] = attrs.field(init=False, factory=dict)
    _seen: dict[str, _Seen] = attrs.field(init=False, factory=dict)
    _runs: dict[str, _ActiveRun] = attrs.field(init=False, factory=dict)
    """Runs this watch started that have not ended, by run id."""
    _to_archive: list[str] = attrs.field(init=False, factory=list)
    """Files of runs that succeeded while no watch was there to archive them."""
    _ledger_lock: trio.Lock = attrs.field(init=False, factory=trio.Lock)
    _polled_at: float = attrs.field(init=False, default=0.0)
    """trio's time at the last listing."""

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if self.recover:
            await trio.to_thread.run_sync(self._recover)
        else:
            self._entries, damage = await trio.to_thread.run_sync(recover_ledger, self.ledger)
            if damage is not None:
                log.error("%s: %s", self.dag, damage)
        task_status.started()
        async with self.supervisor, trio.open_nursery() as nursery:
            await self._poll_forever(nursery)

    def _recover(self) -> None:
        """Take over from the last watch: the ledger read (or rebuilt when damaged), runs it
        left `running` settled from their run.json, staging folders of old runs removed."""
        entries, damage = recover_ledger(self.ledger)
        if damage is not None:
            log.error("%s: %s", self.dag, damage)
        running = {e.run_id for e in entries.values() if e.state == "running"}
        outcomes = {run_id: _final_state(self.runs_dir / run_id) for run_id in running}
        self._entries, self._to_archive = settle_ledger(entries, outcomes)
        if running or damage is not None:
            write_ledger(self.ledger, dict(self._entries))
        shutil.rmtree(self.staging, ignore_errors=True)

    async def _poll_forever(self, nursery: trio.Nursery) -> None:
        """Poll every `poll_interval`; after a failure wait twice as long as the last time, up
        to `MAX_BACKOFF`. `nursery` holds a waiter for the end of each run started."""
        with FolderChanges.watching(self.spec.directory) if self.local else _nothing() as changes:
            await self._poll(nursery, changes.wait if changes is not None else trio.sleep)

    async def _poll(self, nursery: trio.Nursery, wait: Callable[[float], Awaitable[None]]) -> None:
        backoff = self.spec.poll_interval
        while True:
            try:
                async with contextlib.aclosing(await self.connect()) as ftp:
                    if self._to_archive:
                        await self._archive(ftp, self._to_archive)
                        self._to_archive = []
                    files = await ftp.list(self.spec.directory, self.spec.pattern)
                    stable = self._stable(files)
                    if stable:
                        await self._start_run(ftp, stable, nursery)
                backoff = self.spec.poll_interval
            except (ConnectorError, OSError) as exc:  # OSError: the local disk (staging, ledger)
                backoff = min(max(backoff * 2, self.spec.poll_interval), MAX_BACKOFF)
                log.error("%s: FTP watch: %s; trying again in %.0fs", self.dag, exc, backoff)
                await trio.sleep(backoff)
                continue
            await wait(self._next_poll())

    def _next_poll(self) -> float:
        """Seconds to the next poll: `poll_interval`; for a local folder, whose changes wake the
        watch anyway, sooner when a file seen may be stable by then (no change will say so)."""
        if not self.local:
            return self.spec.poll_interval
        polled = self._polled_at
        maturing = [
            seen.since + self.spec.stable_seconds
            for seen in self._seen.values()
            if seen.since + self.spec.stable_seconds >= polled  # not stable at the last poll
        ]
        if not maturing:  # the others have runs, or wait for their next change
            return self.spec.poll_interval
        return min(self.spec.poll_interval, max(min(maturing) - trio.current_time(), 0.0) + 0.01)

    def _stable(self, files: list[RemoteFile]) -> list[RemoteFile]:
        """Files unchanged for stable_seconds, not already running, done or failed as they are."""
        now = self._polled_at = trio.current_time()
        busy = {f.path for run in self._runs.values() for f in run.files}
        listed = {f.path for f in files}
        self._seen = {path: seen for path, seen in self._seen.items() if path in listed}
        stable = []
        for file in files:
            entry = self._entries.get(file.path)
            if file.path in busy or (entry and entry.same_file(file.size, file.modified)):
                continue
            seen = self._seen.get(file.path)
            if seen is None or (seen.size, seen.modified) != (file.size, file.modified):
                self._seen[file.path] = _Seen(size=file.size, modified=file.modified, since=now)
            elif now - seen.since >= self.spec.stable_seconds:
                stable.append(file)
        return stable

    async def _start_run(
        self, ftp: FtpSession, files: list[RemoteFile], nursery: trio.Nursery
    ) -> None:
        prefix = f"{self.clock.now():%Y%m%d_%H%M%S_%f}_"
        folder = Path(await trio.to_thread.run_sync(_make_folder, self.staging, prefix))
        local = []
        try:
            for file in files:
                path = folder / file.name
                await ftp.download(file.path, path)
                local.append(path)
        except ConnectorError:
            await trio.to_thread.run_sync(_remove, folder)
            raise
        # One channel per run, made before the request, so its end cannot come before the
        # watch knows the run; buffered for that one message: the supervisor never waits on it.
        ended_send, ended = trio.open_memory_channel[RunEnded](1)
        reply_send, reply = trio.open_memory_channel[RunRequestAnswer](1)
        await self.supervisor.send(
            RunRequested(
                dag=self.dag,
                trigger=self.trigger,
                seed_files=tuple(local),
                reply=reply_send,
                ended=ended_send,
            )
        )
        answer = await reply.receive()
        if not isinstance(answer, RunAccepted):
            log.info("%s: FTP files wait for the next poll: %s", self.dag, answer)
            await trio.to_thread.run_sync(_remove, folder)
            return
        self._runs[answer.run_id] = _ActiveRun(files=tuple(files), folder=folder)
        nursery.start_soon(self._on_ended, answer.run_id, ended)
        for file in files:
            self._entries[file.path] = LedgerEntry(
                size=file.size, modified=file.modified, state="running", run_id=answer.run_id
            )
        await self._write_ledger()
        log.info("%s %s: started by %s", self.dag, answer.run_id, ", ".join(f.name for f in files))

    async def _on_ended(self, run_id: str, ended: trio.MemoryReceiveChannel[RunEnded]) -> None:
        """Wait for the end of the run `run_id`; then archive its files (a success) or keep
        them (a failure, until they change), and say so in the ledger."""
        async with ended:
            try:
                run = await ended.receive()
            except trio.EndOfChannel:  # closed without a word (the supervisor does not): the
                return  # files stay busy, `running` in the ledger, until a restart settles them
        active = self._runs.pop(run_id)
        succeeded = run.state is RunState.SUCCESS
        if succeeded:
            try:
                async with contextlib.aclosing(await self.connect()) as ftp:
                    await self._archive(ftp, [file.path for file in active.files])
            except ConnectorError as exc:
                log.error(
                    "%s %s: archiving failed: %s (the ledger keeps the files from running again)",
                    self.dag,
                    run_id,
                    exc,
                )
        for file in active.files:
            if succeeded:
                state: EntryState = "done"
            elif run.state is RunState.FAILED:
                state = "failed"
            else:  # cancelled, never finished: its files run again
                self._entries.pop(file.path, None)
                continue
            self._entries[file.path] = attrs.evolve(self._entries[file.path], state=state)
        try:
            await self._write_ledger()
        except OSError as exc:  # the next write has it; until then, the watch knows
            log.error("%s %s: cannot write the FTP ledger: %s", self.dag, run_id, exc)
        await trio.to_thread.run_sync(_remove, active.folder)

    async def _write_ledger(self) -> None:
        """Write the entries as they are once the last write is done: writes from the poll
        and from runs that end never overlap, and the newest entries are written last."""
        async with self._ledger_lock:
            await trio.to_thread.run_sync(write_ledger, self.ledger, dict(self._entries))

    async def _archive(self, ftp: FtpSession, paths: list[str]) -> None:
        if self.spec.archive_dir:
            for path in paths:
                name = posixpath.basename(path)
                await ftp.move(path, posixpath.join(self.spec.archive_dir, name))


def _make_folder(staging: Path, prefix: str) -> str:
    """A new staging folder for one run's files, never one another run has."""
    staging.mkdir(parents=True, exist_ok=True)
    return tempfile.mkdtemp(prefix=prefix, dir=staging)


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def _final_state(run_dir: Path) -> RunState | None:
    """How the run in `run_dir` ended; None when it did not (or left no readable record)."""
    try:
        state = read_manifest(run_dir / MANIFEST).state
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if state.terminal else None


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield None
