"""Following a run's logs: one feed per run for every client, each line once to each client."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest
import trio

from pit.messages.run import RunRecord, TaskRecord
from pit.spec.states import RunState, TaskState
from pit.store.rundir import RunPaths, write_manifest
from pit.web import follow
from pit.web.follow import Batch, RunFeeds

RUN_ID = "20261201_060000.000_etl"
T0 = dt.datetime(2026, 12, 1, 6, tzinfo=dt.UTC)
HANG_GUARD = 10.0


@attrs.define
class Run:
    paths: RunPaths

    def write(self, task: str, data: bytes) -> None:
        with open(self.paths.log(task), "ab") as log:
            log.write(data)

    def record(self, state: RunState) -> None:
        ended = T0 if state.terminal else None
        task = TaskRecord(name="work", state=TaskState(state.value), ended_at=ended)
        write_manifest(
            self.paths,
            RunRecord(
                run_id=RUN_ID, dag="etl", trigger="api", state=state, ended_at=ended, tasks=(task,)
            ),
        )


@pytest.fixture
def run(tmp_path: Path) -> Run:
    paths = RunPaths(root=tmp_path / RUN_ID)
    paths.logs.mkdir(parents=True)
    run = Run(paths)
    run.record(RunState.RUNNING)
    return run


@contextlib.asynccontextmanager
async def feeds_for(run: Run) -> AsyncIterator[tuple[RunFeeds, trio.Event]]:
    until = trio.Event()
    async with trio.open_nursery() as nursery:
        yield RunFeeds(runs_dir=run.paths.root.parent, until=until, nursery=lambda: nursery), until
        until.set()


async def collect(feeds: RunFeeds, run: Run, into: list[Batch], **kwargs: object) -> None:
    async with contextlib.aclosing(feeds.follow(run.paths, **kwargs)) as batches:  # type: ignore[arg-type]
        async for batch in batches:
            into.append(batch)


def texts(batches: list[Batch]) -> list[str]:
    return [line.message for batch in batches for line in batch.lines]


async def test_clients_joining_at_any_time_get_every_line_once(run: Run) -> None:
    run.write("work", b"=== attempt 1/1 at x ===\none\ntw")
    early: list[Batch] = []
    late: list[Batch] = []
    with trio.fail_after(HANG_GUARD):
        async with feeds_for(run) as (feeds, _), trio.open_nursery() as clients:
            clients.start_soon(collect, feeds, run, early)
            await trio.sleep(0.3)
            run.write("work", b"o\nthree\n")
            await trio.sleep(0.3)
            clients.start_soon(collect, feeds, run, late)
            await trio.sleep(0.3)
            run.write("work", b"four\nfi")  # the run ends with a line cut short
            run.record(RunState.SUCCESS)
    lines = ["=== attempt 1/1 at x ===", "one", "two", "three", "four", "fi"]
    assert texts(early) == lines
    assert texts(late) == lines
    for batches in (early, late):
        assert batches[-1].ended
        assert {line.attempt for batch in batches for line in batch.lines} == {1}
    assert early[0].lines[0].at is None  # replayed
    assert early[-1].lines[-1].at is not None  # seen live


async def test_one_feed_reads_the_run_for_all_its_clients(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = 0
    original = follow._Reader.read

    def counted(self: follow._Reader, *args: object, **kwargs: object) -> object:
        nonlocal reads
        reads += 1
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(follow._Reader, "read", counted)
    seen: list[list[Batch]] = [[] for _ in range(10)]
    with trio.fail_after(HANG_GUARD):
        async with feeds_for(run) as (feeds, _), trio.open_nursery() as clients:
            for batches in seen:
                clients.start_soon(collect, feeds, run, batches)
            await trio.sleep(0.25)
            run.write("work", b"line\n")
            await trio.sleep(0.25)
            run.record(RunState.SUCCESS)
    assert all(texts(batches) == ["line"] for batches in seen)
    assert reads < 15, "each client read the logs itself"
    shared = {id(batches[-2]) for batches in seen}
    assert len(shared) == 1, "the clients did not get the same batch"


async def test_a_client_too_far_behind_is_let_go(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(follow, "BACKLOG", 2)
    with trio.fail_after(HANG_GUARD):
        async with feeds_for(run) as (feeds, until):
            batches = feeds.follow(run.paths)
            async with contextlib.aclosing(batches):
                await batches.__anext__()  # the replay; then it stops reading
                for n in range(5):
                    run.write("work", f"{n}\n".encode())
                    await trio.sleep(0.15)
                got = [batch async for batch in batches]
            until.set()
    assert 1 <= len(got) <= 2  # what was queued before it was let go; then the end
    assert not got[-1].ended


async def test_a_run_that_has_ended_is_replayed_whole_or_its_tail(run: Run) -> None:
    run.write("work", b"a\nb\nc")
    run.write("load", b"x\ny\n")
    run.record(RunState.FAILED)
    whole: list[Batch] = []
    tail: list[Batch] = []
    with trio.fail_after(HANG_GUARD):
        async with feeds_for(run) as (feeds, _):
            await collect(feeds, run, whole)
            await collect(feeds, run, tail, tail=1)
    assert texts(whole) == ["x", "y", "a", "b", "c"]  # tasks by name; the last line as it is
    assert texts(tail) == ["y", "c"]
    assert len(whole) == 1
    assert whole[0].ended


async def test_the_feed_stops_when_its_last_client_leaves(run: Run) -> None:
    with trio.fail_after(HANG_GUARD):
        async with feeds_for(run) as (feeds, _):
            batches = feeds.follow(run.paths)
            async with contextlib.aclosing(batches):
                await batches.__anext__()
                assert RUN_ID in feeds._feeds
            while RUN_ID in feeds._feeds:  # noqa: ASYNC110 - the feed notices within a poll
                await trio.sleep(0.05)
