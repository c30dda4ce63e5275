"""The store writer: one per process, folding the records the runs write into few transactions."""

from __future__ import annotations

import logging
from pathlib import Path

import attrs
import pytest
import trio

from pit.actors.store import StoreWriter
from pit.messages.run import RunRecord, TaskRecord
from pit.spec.states import RunState, TaskState
from pit.store.runstore import Changes, RunStore


def run(run_id: str, state: RunState) -> RunRecord:
    return RunRecord(run_id=run_id, dag="etl", trigger="manual", state=state)


async def test_each_runs_latest_record_reaches_the_store_before_the_writer_ends(
    tmp_path: Path,
) -> None:
    writer = StoreWriter(path=tmp_path / "pit.db", runs_dir=tmp_path / "runs")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        first, second = writer.inbox(), writer.inbox()
        for state in (RunState.RUNNING, RunState.SUCCESS):
            first.send_nowait(run("20261201_060000.000_etl", state))
            await trio.sleep(0.1)
        second.send_nowait(run("20261201_060001.000_etl", RunState.RUNNING))
        second.send_nowait(run("20261201_060001.000_etl", RunState.FAILED))
        first.close()
        second.close()
        writer.close()

    with RunStore.open(tmp_path / "pit.db") as store:
        assert [(r.run_id, r.state) for r in store.runs()] == [
            ("20261201_060001.000_etl", RunState.FAILED),
            ("20261201_060000.000_etl", RunState.SUCCESS),
        ]


async def test_a_store_it_cannot_use_is_said_once_and_the_records_are_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "pit.db").write_bytes(b"not sqlite" * 500)
    writer = StoreWriter(path=tmp_path / "pit.db", runs_dir=tmp_path / "runs")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        inbox = writer.inbox()
        for i in range(3):
            inbox.send_nowait(run(f"20261201_06000{i}.000_etl", RunState.SUCCESS))
            await trio.sleep(0.1)
        inbox.close()
        writer.close()

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "cannot be read" in warnings[0].getMessage()
    assert "run.json" in warnings[0].getMessage()


async def test_a_long_runs_later_writes_touch_only_its_changed_tasks(tmp_path: Path) -> None:
    tasks = tuple(TaskRecord(name=f"t{i}") for i in range(100))
    started = RunRecord(
        run_id="20261201_060000.000_etl",
        dag="etl",
        trigger="manual",
        state=RunState.RUNNING,
        tasks=tasks,
    )
    one_ran = attrs.evolve(
        started, tasks=(attrs.evolve(tasks[0], state=TaskState.SUCCESS), *tasks[1:])
    )
    written: list[object] = []
    first_written = trio.Event()
    real_put = RunStore.put

    def put(store: RunStore, items: list[object]) -> None:  # in the writer's worker thread
        written.extend(items)
        real_put(store, items)  # type: ignore[arg-type]
        trio.from_thread.run_sync(first_written.set)

    writer = StoreWriter(path=tmp_path / "pit.db", runs_dir=tmp_path / "runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RunStore, "put", put)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.run)
            inbox = writer.inbox()
            inbox.send_nowait(started)
            await first_written.wait()  # a busy machine may take its time over it
            inbox.send_nowait(one_ran)
            inbox.close()
            writer.close()

    assert written == [started, Changes(one_ran, frozenset({0}))]
    with RunStore.open(tmp_path / "pit.db") as store:
        assert store.get(started.run_id) == one_ran
