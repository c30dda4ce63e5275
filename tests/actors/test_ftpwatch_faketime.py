"""The FTP watch on trio's fake clock, against an in-memory server and a stand-in supervisor.

`FakeServer` holds the remote files (the test changes them between polls) and notes when each
session was opened and each listing made; `FakeSupervisor` answers every `RunRequested` (run ids
run-1, run-2, ...) and notes when it arrived and what the staged files held; the test ends runs by
sending `RunEnded` on the request's `ended` channel. No socket, no process: each test runs in
milliseconds, whatever the hours of fake time it covers.

The watch does its file work (staging folders, the ledger) in worker threads, and while a thread
runs the fake clock may jump to the next deadline. So the tests set no deadline of their own: they
wait for the watch's own progress (a listing, a request), which lets fake times be asserted
exactly; a wait that never ends is cut by `FakeServer.give_up_after`, checked at every listing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fnmatch
import itertools
import json
import posixpath
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from pit.actors.ftpwatch import MAX_BACKOFF, FtpWatch
from pit.clock import FixedClock
from pit.connectors.ftp import RemoteFile
from pit.connectors.target import ConnectorError
from pit.messages.run import RunEnded, RunRecord
from pit.messages.trigger import RunRequested, SupervisorInbox
from pit.messages.webhook import RunAccepted, RunRejected, RunRequestAnswer
from pit.spec.dag import FtpWatchSpec
from pit.spec.states import RunState
from pit.store.ledger import LedgerEntry, read_ledger, write_ledger

POLL = 10.0
STABLE = 30
NOON = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)


class Ticks:
    """Fake times at which something happened, and a way to wait for the next ones."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._changed = trio.Event()

    def tick(self) -> None:
        self.times.append(trio.current_time())
        self._changed.set()
        self._changed = trio.Event()

    def __len__(self) -> int:
        return len(self.times)

    async def reach(self, count: int) -> None:
        while len(self.times) < count:
            await self._changed.wait()


def gaps(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(times)]


@attrs.define
class FakeFile:
    data: bytes
    modified: str | None = "20261202110000"


@attrs.define
class FakeServer:
    """An FTP server in memory: remote path -> file."""

    files: dict[str, FakeFile] = attrs.field(factory=dict)
    failing: str | None = None
    """The call that fails with a ConnectorError: "connect", "list", "download" or "move"."""
    connects: Ticks = attrs.field(factory=Ticks)
    lists: Ticks = attrs.field(factory=Ticks)
    open_sessions: int = 0
    give_up_after: float = 100_000.0
    """Fake seconds after which a listing fails the test: a wait that would never end."""
    started: float = 0.0
    """Fake time at which the watch started."""
    on_connect: Callable[[], None] = lambda: None
    """Called at each connect: to look at the watch between two polls."""

    def put(self, path: str, data: bytes, modified: str | None = "20261202110000") -> None:
        self.files[path] = FakeFile(data, modified)

    def names(self, directory: str) -> list[str]:
        return sorted(posixpath.basename(p) for p in self.files if p.startswith(directory + "/"))

    async def connect(self) -> FakeSession:
        self.connects.tick()
        self.on_connect()
        self._fail_if("connect")
        self.open_sessions += 1
        return FakeSession(self)

    def _fail_if(self, call: str) -> None:
        if self.failing == call:
            raise ConnectorError(f"{call} refused by the fake server")


@attrs.define
class FakeSession:
    server: FakeServer
    closed: bool = False

    async def list(self, directory: str, pattern: str = "*") -> list[RemoteFile]:
        server = self.server
        assert trio.current_time() - server.started < server.give_up_after, "waited for ever"
        server.lists.tick()
        server._fail_if("list")
        return [
            RemoteFile(
                path=path,
                name=posixpath.basename(path),
                size=len(file.data),
                modified=file.modified,
            )
            for path, file in sorted(server.files.items())
            if posixpath.dirname(path) == directory
            and fnmatch.fnmatchcase(posixpath.basename(path), pattern)
        ]

    async def download(self, remote_path: str, local_path: Path | str) -> int:
        self.server._fail_if("download")
        data = self.server.files[remote_path].data
        # A few bytes, on purpose on the loop: in a worker thread, the fake clock would jump.
        Path(local_path).write_bytes(data)  # noqa: ASYNC240
        return len(data)

    async def move(self, src: str, dst: str) -> None:
        self.server._fail_if("move")
        self.server.files[dst] = self.server.files.pop(src)

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            self.server.open_sessions -= 1


@attrs.frozen
class Arrival:
    request: RunRequested
    at: float
    """Fake time at which the supervisor got the request."""
    answer: RunRequestAnswer
    staged: dict[str, bytes]
    """The seed files as they were when the request arrived: name -> content."""

    @property
    def run_id(self) -> str:
        assert isinstance(self.answer, RunAccepted)
        return self.answer.run_id

    async def end(self, state: RunState) -> None:
        assert self.request.ended is not None
        record = RunRecord(run_id=self.run_id, dag="drop", trigger="ftp", state=state)
        await self.request.ended.send(RunEnded(record=record))


@attrs.define
class FakeSupervisor:
    inbox: trio.MemoryReceiveChannel[SupervisorInbox]
    rejecting: bool = False
    arrivals: list[Arrival] = attrs.field(factory=list)
    requests: Ticks = attrs.field(factory=Ticks)

    async def serve(self) -> None:
        async for message in self.inbox:
            assert isinstance(message, RunRequested)
            assert message.dag == "drop"
            assert message.trigger == "ftp"
            answer: RunRequestAnswer = (
                RunRejected(reason="busy", message="too many runs")
                if self.rejecting
                else RunAccepted(run_id=f"run-{len(self.arrivals) + 1}")
            )
            staged = {p.name: p.read_bytes() for p in message.seed_files}
            self.arrivals.append(Arrival(message, trio.current_time(), answer, staged))
            assert message.reply is not None
            await message.reply.send(answer)
            self.requests.tick()

    async def next_request(self) -> Arrival:
        await self.requests.reach(len(self.requests) + 1)
        return self.arrivals[-1]


@attrs.frozen
class Watched:
    server: FakeServer
    supervisor: FakeSupervisor
    watch: FtpWatch
    started: float

    def since_start(self, times: list[float]) -> list[float]:
        return [t - self.started for t in times]

    def ledger(self) -> dict[str, tuple[str, str]]:
        """remote path -> (state, run id)."""
        return {
            path: (entry.state, entry.run_id)
            for path, entry in read_ledger(self.watch.ledger).items()
        }

    def staging_folders(self) -> list[Path]:
        staging = self.watch.staging
        return sorted(staging.iterdir()) if staging.is_dir() else []

    async def polls(self, count: int) -> None:
        """Wait for `count` more listings."""
        await self.server.lists.reach(len(self.server.lists) + count)

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait, a listing at a time, until `condition` holds: for what the watch does in a
        worker thread (the ledger, staging folders), which the fake clock does not wait for."""
        while not condition():
            await self.polls(1)


@contextlib.asynccontextmanager
async def watching(
    tmp_path: Path, server: FakeServer, *, recover: bool = True, **spec: Any
) -> AsyncIterator[Watched]:
    send, inbox = trio.open_memory_channel[SupervisorInbox](0)
    supervisor = FakeSupervisor(inbox)
    options: dict[str, Any] = {
        "directory": "/incoming",
        "pattern": "sales_*.csv",
        "secret": "ftp",
        "archive_dir": "/archive",
        "poll_interval": POLL,
        "stable_seconds": STABLE,
    }
    watch = FtpWatch(
        dag="drop",
        spec=FtpWatchSpec(**(options | spec)),
        connect=server.connect,
        ledger=tmp_path / "ftp" / "drop.json",
        staging=tmp_path / "ftp" / "drop.staging",
        runs_dir=tmp_path / "runs",
        clock=FixedClock(NOON),  # every staging folder gets the same time: names must differ
        recover=recover,
        supervisor=send,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervisor.serve)
        server.started = trio.current_time()
        await nursery.start(watch.run)
        yield Watched(server, supervisor, watch, server.started)
        nursery.cancel_scope.cancel()
    assert server.open_sessions == 0


@pytest.fixture
def server() -> FakeServer:
    server = FakeServer()
    server.put("/incoming/sales_1.csv", b"a,1\n")
    server.put("/incoming/other.txt", b"not for us\n")
    return server


# --- the stability window ---------------------------------------------------------------------


async def test_a_file_is_picked_up_once_unchanged_for_stable_seconds(
    autojump_clock: trio.abc.Clock, tmp_path: Path, server: FakeServer
) -> None:
    async with watching(tmp_path, server) as watched:
        arrival = await watched.supervisor.next_request()

        # first seen at the poll at 0; unchanged at 10 and 20; 30 seconds old at 30
        assert arrival.at - watched.started == STABLE
        assert watched.since_start(server.lists.times) == [0, 10, 20, 30]
        assert arrival.staged == {"sales_1.csv": b"a,1\n"}
        (folder,) = watched.staging_folders()
        assert [p.parent for p in arrival.request.seed_files] == [folder]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda s: s.put("/incoming/sales_1.csv", b"a,1\nb,2\n"), id="size"),
        pytest.param(lambda s: s.put("/incoming/sales_1.csv", b"a,1\n", "2026120211"), id="time"),
    ],
)
async def test_a_file_that_changes_starts_its_window_again(
    autojump_clock: trio.abc.Clock,
    tmp_path: Path,
    server: FakeServer,
    change: Callable[[FakeServer], None],
) -> None:
    async with watching(tmp_path, server) as watched:
        await server.lists.reach(2)  # seen at 0 and 10
        change(server)  # so at 20 it is new again

        arrival = await watched.supervisor.next_request()

        assert arrival.at - watched.started == 20 + STABLE
        assert len(arrival.staged["sales_1.csv"]) == len(server.files["/incoming/sales_1.csv"].data)


async def test_a_file_that_keeps_growing_is_never_picked_up(
    autojump_clock: trio.abc.Clock, tmp_path: Path, server: FakeServer
) -> None:
    async with watching(tmp_path, server) as watched:
        for _ in range(20):
            await watched.polls(1)
            server.files["/incoming/sales_1.csv"].data += b"more\n"

        assert watched.supervisor.arrivals == []


async def test_files_stable_at_the_same_poll_start_one_run_together(
    autojump_clock: trio.abc.Clock, tmp_path: Path, server: FakeServer
) -> None:
    server.put("/incoming/sales_2.csv", b"b,2\n")
    async with watching(tmp_path, server, stable_seconds=0) as watched:
        arrival = await watched.supervisor.next_request()

        assert arrival.at - watched.started == POLL  # seen at 0, unchanged at 10
        assert arrival.staged == {"sales_1.csv": b"a,1\n", "sales_2.csv": b"b,2\n"}


# --- errors and backoff -----------------------------------------------------------------------


@pytest.mark.parametrize("failing", ["connect", "list"])
async def test_a_failing_server_is_tried_again_less_and_less_often_up_to_max_backoff(
    autojump_clock: trio.abc.Clock, tmp_path: Path, server: FakeServer, failing: str
) -> None:
    server.failing = failing
    async with watching(tmp_path, server) as watched:
        await server.connects.reach(10)
        waits = gaps(server.connects.times)

        assert waits == [20, 40, 80, 160, MAX_BACKOFF, MAX_BACKOFF, MAX_BACKOFF, MAX_BACKOFF, 300]

        server.failing = None  # the server is back: polls at the poll interval again
        await server.connects.reach(14)
        waits = gaps(server.connects.times[9:])

        assert waits == [MAX_BACKOFF, POLL, POLL, POLL]
        assert watched.supervisor.arrivals == []


async def test_a_failed_download_backs_off_and_leaves_no_staging_folder(
    autojump_clock: trio.abc.Clock, tmp_path: Path, server: FakeServer
) -> None:
    server.failing = "download"
    staging = tmp_path / "ftp" / "drop.staging"
    folders_at_connect: list[list[Path]] = []
    server.on_connect = lambda: folders_at_connect.append(sorted(staging.glob("*")))
    async with watching(tmp_path, server, stable_seconds=0) as watched:
        await server.connects.reach(4)  # 0: seen; 10: stable, download fails; 30; 70

        assert watched.since_start(server.connects.times) == [0, 10, 30, 70]
        assert watched.supervisor.arrivals == []
        assert folders_at_connect == [[], [], [], []]  # each failed try removed its folder


async def test_a_rejected_request_is_made_again_at_the_next_poll(
    autojump_clock: trio.abc.Clock, tmp_path: Path, server: FakeServer
) -> None:
    async with watching(tmp_path, server, stable_seconds=0) as watched:
        watched.supervisor.rejecting = True
        first = await watched.supervisor.next_request()
        watched.supervisor.rejecting = False
        second = await watched.supervisor.next_request()

        assert second.at - first.at == POLL
        assert isinstance(second.answer, RunAccepted)
        await watched.until(lambda: watched.ledger() != {})
        assert watched.ledger() == {"/incoming/sales_1.csv": ("running", "run-2")}
        # The rejected request's folder goes (in a worker thread, so in its own time).
        await watched.until(lambda: len(watched.staging_folders()) == 1)


# --- one run per file, and how it ended -------------------------------------------------------


async def test_a_file_whose_run_is_active_is_not_requested_again(
    autojump_clock: trio.abc.Clock, tmp_path: Path, server: FakeServer
) -> None:
    async with watching(tmp_path, server, stable_seconds=0) as watched:
        arrival = await watched.supervisor.next_request()
        await watched.until(lambda: watched.ledger() != {})
        assert watched.ledger() == {"/incoming/sales_1.csv": ("running", "run-1")}

        await watched.polls(50)
        server.put("/incoming/sales_1.csv", b"a,1\nb,2\n")  # even when it changes meanwhile
        await watched.polls(50)

        assert watched.supervisor.arrivals == [arrival]


async def test_after_a_success_the_files_are_archived_and_done(
    autojump_clock: trio.abc.Clock, tmp_path: Path, server: FakeServer
) -> None:
    server.put("/incoming/sales_2.csv", b"b,2\n")
    async with watching(tmp_path, server, stable_seconds=0) as watched:
        arrival = await watched.supervisor.next_request()
        await arrival.end(RunState.SUCCESS)
        await watched.until(lambda: watched.staging_folders() == [])

        assert server.names("/archive") == ["sales_1.csv", "sales_2.csv"]
        assert server.names("/incoming") == ["other.txt"]
        assert watched.ledger() == {
            "/incoming/sales_1.csv": ("done", "run-1"),
            "/incoming/sales_2.csv": ("done", "run-1"),
        }
        await watched.polls(5)
        assert len(watched.supervisor.arrivals) == 1


async def test_without_an_archive_dir_a_done_file_stays_and_is_not_run_again(
    autojump_clock: trio.abc.Clock, tmp_path: Path, server: FakeServer
) -> None:
    async with watching(tmp_path, server, stable_seconds=0, archive_dir=None) as watched:
        arrival = await watched.supervisor.next_request()
        await arrival.end(RunState.SUCCESS)
        await watched.until(lambda: watched.staging_folders() == [])

        await watched.polls(5)

        assert server.names("/incoming") == ["other.txt", "sales_1.csv"]
        assert watched.ledger() == {"/incoming/sales_1.csv": ("done", "run-1")}
        assert len(watched.supervisor.arrivals) == 1


async def test_when_archiving_fails_the_file_is_done_all_the_same(
    autojump_clock: trio.abc.Clock, tmp_path: Path, server: FakeServer
) -> None:
    async with watching(tmp_path, server, stable_seconds=0) as watched:
        arrival = await watched.supervisor.next_request()
        server.failing = "move"
        await arrival.end(RunState.SUCCESS)
        await watched.until(lambda: watched.staging_folders() == [])

        await watched.polls(5)

        assert server.names("/incoming") == ["other.txt", "sales_1.csv"]
        assert watched.ledger() == {"/incoming/sales_1.csv": ("done", "run-1")}
        assert len(watched.supervisor.arrivals) == 1


async def test_after_a_failure_the_file_waits_until_it_changes(
    autojump_clock: trio.abc.Clock, tmp_path: Path, server: FakeServer
) -> None:
    async with watching(tmp_path, server) as watched:
        first = await watched.supervisor.next_request()
        await first.end(RunState.FAILED)
        await watched.until(lambda: watched.staging_folders() == [])
        assert watched.ledger() == {"/incoming/sales_1.csv": ("failed", "run-1")}

        await watched.polls(20)
        assert len(watched.supervisor.arrivals) == 1
        assert server.names("/incoming") == ["other.txt", "sales_1.csv"]  # not archived

        server.put("/incoming/sales_1.csv", b"a,1\nfixed\n")
        changed = trio.current_time()
        second = await watched.supervisor.next_request()

        assert changed + STABLE <= second.at <= changed + STABLE + POLL
        assert second.staged == {"sales_1.csv": b"a,1\nfixed\n"}
        await watched.until(lambda: watched.ledger()["/incoming/sales_1.csv"][1] == "run-2")
        assert watched.ledger() == {"/incoming/sales_1.csv": ("running", "run-2")}


async def test_after_a_cancelled_run_the_file_runs_again(
    autojump_clock: trio.abc.Clock, tmp_path: Path, server: FakeServer
) -> None:
    async with watching(tmp_path, server) as watched:
        first = await watched.supervisor.next_request()
        await first.end(RunState.CANCELLED)
        second = await watched.supervisor.next_request()

        # It has been stable all along: the next poll picks it up again.
        assert second.at - first.at <= 2 * POLL
        assert second.staged == {"sales_1.csv": b"a,1\n"}
        await watched.until(
            lambda: watched.ledger() == {"/incoming/sales_1.csv": ("running", "run-2")}
        )
        # The cancelled run's folder goes (removed in a worker thread, so in its own time).
        await watched.until(lambda: len(watched.staging_folders()) == 1)


# --- taking over from the last pit ------------------------------------------------------------


def write_run(runs_dir: Path, run_id: str, state: RunState) -> None:
    folder = runs_dir / run_id
    folder.mkdir(parents=True)
    record: dict[str, object] = {
        "run_id": run_id,
        "dag": "drop",
        "trigger": "ftp",
        "state": state.value,
        "started_at": None,
        "ended_at": None,
        "tasks": [],
    }
    (folder / "run.json").write_text(json.dumps(record))


def running(data: bytes, run_id: str) -> LedgerEntry:
    return LedgerEntry(size=len(data), modified="20261202110000", state="running", run_id=run_id)


@pytest.fixture
def left_behind(tmp_path: Path, server: FakeServer) -> FakeServer:
    """What a pit that died left: four files its runs had, run.json files telling how three of
    those runs ended (one did not), and an old staging folder."""
    runs = {"ok": RunState.SUCCESS, "bad": RunState.FAILED, "unfinished": RunState.RUNNING}
    for run_id, state in runs.items():
        write_run(tmp_path / "runs", run_id, state)
    entries = {}
    for name in ("ok", "bad", "unfinished", "vanished"):  # "vanished" left no run.json
        path = f"/incoming/sales_{name}.csv"
        server.put(path, name.encode())
        entries[path] = running(name.encode(), name)
    write_ledger(tmp_path / "ftp" / "drop.json", entries)
    (tmp_path / "ftp" / "drop.staging" / "old").mkdir(parents=True)
    return server


async def test_at_start_runs_left_running_are_settled_from_their_run_json(
    autojump_clock: trio.abc.Clock, tmp_path: Path, left_behind: FakeServer
) -> None:
    server = left_behind
    server.files.pop("/incoming/sales_1.csv")
    async with watching(tmp_path, server) as watched:
        assert watched.staging_folders() == []  # the old staging folder went before the start
        assert watched.ledger() == {
            "/incoming/sales_ok.csv": ("done", "ok"),
            "/incoming/sales_bad.csv": ("failed", "bad"),
        }
        arrival = await watched.supervisor.next_request()

        # the success is archived at the first poll; the runs that never ended run again
        assert server.names("/archive") == ["sales_ok.csv"]
        assert arrival.at - watched.started == STABLE
        assert arrival.staged == {
            "sales_unfinished.csv": b"unfinished",
            "sales_vanished.csv": b"vanished",
        }
        await watched.polls(5)
        assert len(watched.supervisor.arrivals) == 1  # never the failed one


async def test_a_reloaded_watch_leaves_running_entries_alone(
    autojump_clock: trio.abc.Clock, tmp_path: Path, left_behind: FakeServer
) -> None:
    """recover=False: the runs may still be active under the same pit."""
    server = left_behind
    server.files.pop("/incoming/sales_1.csv")
    ledger_before = read_ledger(tmp_path / "ftp" / "drop.json")
    async with watching(tmp_path, server, recover=False) as watched:
        await watched.polls(10)

        assert watched.supervisor.arrivals == []
        assert server.names("/archive") == []
        assert read_ledger(watched.watch.ledger) == ledger_before


async def test_a_damaged_ledger_is_set_aside_and_its_files_run(
    autojump_clock: trio.abc.Clock, tmp_path: Path, server: FakeServer
) -> None:
    ledger = tmp_path / "ftp" / "drop.json"
    ledger.parent.mkdir(parents=True)
    ledger.write_text('{"/incoming/sales_1.csv": {"size": "x"')
    async with watching(tmp_path, server) as watched:
        assert (ledger.parent / "drop.json.damaged").is_file()
        arrival = await watched.supervisor.next_request()

        assert arrival.staged == {"sales_1.csv": b"a,1\n"}
