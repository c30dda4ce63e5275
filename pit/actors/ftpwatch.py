"""The FTP watch trigger: polls a directory, starts a run with the files that stopped growing,
and archives them once that run succeeded.

Never twice, never lost: a file that started a run is not picked up again while that run is
active; after a failure it is not retried until it changes (size or modification time); the
ledger (`pit.store.ledger`) keeps both across restarts. A server that fails is retried with
backoff; the trigger never takes down the supervisor.
"""

from __future__ import annotations

import logging
import math
import posixpath
import shutil
from pathlib import Path

import attrs
import trio

from pit.clock import Clock
from pit.connectors.ftp import FtpClient, FtpTarget, RemoteFile
from pit.connectors.target import ConnectorError
from pit.messages.trigger import RunEnded, RunRequested, SupervisorInbox
from pit.messages.webhook import RunAccepted, RunRequestAnswer
from pit.spec.dag import FtpWatchSpec
from pit.spec.states import RunState
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


@attrs.define(kw_only=True)
class _Seen:
    size: int
    modified: str | None
    since: float
    """trio time when the file was first seen at this size and time."""


@attrs.define(kw_only=True)
class FtpWatch:
    dag: str
    spec: FtpWatchSpec
    target: FtpTarget
    ledger: Path
    staging: Path
    """Where files are downloaded before their run copies them into its data/."""
    runs_dir: Path
    """Where the runs' run.json tell how runs the ledger still calls running ended."""
    clock: Clock
    recover: bool = True
    """Settle what the last pit left (at start); False when a reload restarts the watch while
    runs it started may still be active or waiting."""
    supervisor: trio.MemorySendChannel[SupervisorInbox]
    _entries: dict[str, LedgerEntry] = attrs.field(init=False, factory=dict)
    _seen: dict[str, _Seen] = attrs.field(init=False, factory=dict)
    _runs: dict[str, tuple[list[RemoteFile], Path]] = attrs.field(init=False, factory=dict)
    """run id -> the files it was started with, and their staging folder."""
    _to_archive: list[str] = attrs.field(init=False, factory=list)
    """Files of runs that succeeded while no watch was there to archive them."""

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if self.recover:
            await trio.to_thread.run_sync(self._recover)
        else:
            self._entries, damage = await trio.to_thread.run_sync(recover_ledger, self.ledger)
            if damage is not None:
                log.error("%s: %s", self.dag, damage)
        ended_send, ended = trio.open_memory_channel[RunEnded](math.inf)
        task_status.started()
        async with self.supervisor, trio.open_nursery() as nursery:
            nursery.start_soon(self._on_ended, ended)
            await self._poll_forever(ended_send)

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

    async def _poll_forever(self, ended: trio.MemorySendChannel[RunEnded]) -> None:
        backoff = self.spec.poll_interval
        while True:
            try:
                async with await FtpClient.connect(self.target) as ftp:
                    if self._to_archive:
                        await self._archive(ftp, self._to_archive)
                        self._to_archive = []
                    files = await ftp.list(self.spec.directory, self.spec.pattern)
                    stable = self._stable(files)
                    if stable:
                        await self._start_run(ftp, stable, ended)
                backoff = self.spec.poll_interval
            except ConnectorError as exc:
                backoff = min(max(backoff * 2, self.spec.poll_interval), MAX_BACKOFF)
                log.error("%s: FTP watch: %s; trying again in %.0fs", self.dag, exc, backoff)
                await trio.sleep(backoff)
                continue
            await trio.sleep(self.spec.poll_interval)

    def _stable(self, files: list[RemoteFile]) -> list[RemoteFile]:
        """Files unchanged for stable_seconds, not already running, done or failed as they are."""
        now = trio.current_time()
        busy = {f.path for files, _ in self._runs.values() for f in files}
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
        self, ftp: FtpClient, files: list[RemoteFile], ended: trio.MemorySendChannel[RunEnded]
    ) -> None:
        folder = self.staging / f"{self.clock.now():%Y%m%d_%H%M%S_%f}"
        folder.mkdir(parents=True, exist_ok=True)
        local = []
        for file in files:
            path = folder / file.name
            await ftp.download(file.path, path)
            local.append(path)
        reply_send, reply = trio.open_memory_channel[RunRequestAnswer](1)
        await self.supervisor.send(
            RunRequested(
                dag=self.dag,
                trigger="ftp",
                seed_files=tuple(local),
                reply=reply_send,
                ended=ended.clone(),
            )
        )
        answer = await reply.receive()
        if not isinstance(answer, RunAccepted):
            log.info("%s: FTP files wait for the next poll: %s", self.dag, answer)
            shutil.rmtree(folder, ignore_errors=True)
            return
        self._runs[answer.run_id] = (files, folder)
        for file in files:
            self._entries[file.path] = LedgerEntry(
                size=file.size, modified=file.modified, state="running", run_id=answer.run_id
            )
        await trio.to_thread.run_sync(write_ledger, self.ledger, dict(self._entries))
        log.info("%s %s: started by %s", self.dag, answer.run_id, ", ".join(f.name for f in files))

    async def _on_ended(self, ended: trio.MemoryReceiveChannel[RunEnded]) -> None:
        async for run in ended:
            files, folder = self._runs.pop(run.run_id, ([], None))
            succeeded = run.state is RunState.SUCCESS
            if succeeded:
                try:
                    async with await FtpClient.connect(self.target) as ftp:
                        await self._archive(ftp, [file.path for file in files])
                except ConnectorError as exc:
                    log.error(
                        "%s %s: archiving failed: %s (the ledger keeps the files from "
                        "running again)",
                        self.dag,
                        run.run_id,
                        exc,
                    )
            for file in files:
                if succeeded:
                    state: EntryState = "done"
                elif run.state is RunState.FAILED:
                    state = "failed"
                else:  # cancelled, never finished: its files run again
                    self._entries.pop(file.path, None)
                    continue
                self._entries[file.path] = attrs.evolve(self._entries[file.path], state=state)
            await trio.to_thread.run_sync(write_ledger, self.ledger, dict(self._entries))
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)

    async def _archive(self, ftp: FtpClient, paths: list[str]) -> None:
        if self.spec.archive_dir:
            for path in paths:
                name = posixpath.basename(path)
                await ftp.move(path, posixpath.join(self.spec.archive_dir, name))


def _final_state(run_dir: Path) -> RunState | None:
    """How the run in `run_dir` ended; None when it did not (or left no readable record)."""
    try:
        state = read_manifest(run_dir / MANIFEST).state
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if state.terminal else None
