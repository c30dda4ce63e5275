"""The store writer: one per process, folding the records the runs write into few transactions."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio

from pit.actors.store import StoreWriter
from pit.messages.run import RunRecord
from pit.spec.states import RunState
from pit.store.runstore import RunStore


def run(run_id: str, state: RunState) -> RunRecord:
    return RunRecord(run_id=run_id, dag="etl", trigger="manual", state=state)


async def test_each_runs_latest_record_reaches_the_store_before_the_writer_ends(
    tmp_path: Path,
) -> None:
    writer = StoreWriter(path=tmp_path / "pit.db")
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
    writer = StoreWriter(path=tmp_path / "pit.db")
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
