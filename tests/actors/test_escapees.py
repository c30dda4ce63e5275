"""Processes that leave their task's process group (setsid, a double fork) end with the task.

Run in pytest's process, which is no subreaper: pit finds the escapees by the run's marks in
their environment. `tests/e2e/test_chaos.py` covers the subreaper path, through the real CLI.
"""

from __future__ import annotations

import textwrap

import pytest
import trio

from pit.messages.run import CancelRun, RunRecord
from pit.spec.states import RunState, TaskState

from .processbench import (
    Bench,
    bounded_nursery,
    dag,
    start_run,
    still_running,
    task,
    task_record,
    wait_for_pids,
    write_scripts,
)

pytestmark = pytest.mark.slow

ESCAPEES = """\
    setsid sleep 300 &
    echo $! >> "$PIDS"
    ( setsid bash -c 'sleep 300 & echo $! >> "$PIDS"' & )
    setsid bash -c 'trap "" TERM; echo $$ >> "$PIDS"; while :; do sleep 1; done' &
    echo $$ >> "$PIDS"
    while [ "$(wc -l < "$PIDS")" -lt 4 ]; do sleep 0.01; done
    echo started
    """
"""A plain `setsid` child, a double-forked daemon and a `setsid` child that ignores SIGTERM,
each in a session of its own."""


@pytest.mark.parametrize("live_output", [False, True], ids=["log-only", "live-output"])
async def test_escapees_of_a_task_that_succeeded_are_killed_at_once(
    bench: Bench, live_output: bool
) -> None:
    write_scripts(bench.project, {"leaver.sh": ESCAPEES + "exit 0\n"})

    start = trio.current_time()
    record = await bench.run(dag(task("leaver")), live_output=[] if live_output else None)
    elapsed = trio.current_time() - start

    pids = bench.pids()
    assert len(pids) == 4, "the script did not record all its processes"
    assert await still_running(pids) == []
    assert task_record(record, "leaver").state is TaskState.SUCCESS
    # An escapee holding the output pipe must not hold the task (it used to, for 5 s).
    assert elapsed < 2.0, f"the run took {elapsed:.1f}s: it waited on the escapees"


@pytest.mark.parametrize("live_output", [False, True], ids=["log-only", "live-output"])
async def test_escapees_of_a_timed_out_task_are_killed(bench: Bench, live_output: bool) -> None:
    write_scripts(bench.project, {"spawner.sh": ESCAPEES + "sleep 300\n"})

    record = await bench.run(
        dag(task("spawner", timeout=1.0)), live_output=[] if live_output else None
    )

    assert len(bench.pids()) == 4
    assert await still_running(bench.pids()) == []
    assert task_record(record, "spawner").error == "timed out after 1.0s"


async def test_escapees_of_a_cancelled_run_are_killed(bench: Bench) -> None:
    write_scripts(bench.project, {"spawner.sh": ESCAPEES + "sleep 300\n"})
    records: list[RunRecord] = []

    async with bounded_nursery() as nursery:
        started = await start_run(bench, dag(task("spawner")), nursery, records)
        pids = await wait_for_pids(bench, 4)
        async with started.handle.inbox:
            await started.handle.inbox.send(CancelRun())

    assert records[0].state is RunState.CANCELLED
    assert await still_running(pids) == []


async def test_escapees_of_a_task_do_not_touch_a_sibling_task(bench: Bench) -> None:
    """Only the ended task's escapees go: a sibling's, still running, stay."""
    sibling = textwrap.dedent("""\
        setsid sleep 300 &
        echo $! > "$PIDS.sibling"
        sleep 300
        """)
    write_scripts(bench.project, {"leaver.sh": ESCAPEES + "exit 0\n", "sibling.sh": sibling})
    records: list[RunRecord] = []

    async with bounded_nursery() as nursery:
        started = await start_run(bench, dag(task("leaver"), task("sibling")), nursery, records)
        leaver = await wait_for_pids(bench, 4)
        assert await still_running(leaver) == []
        sibling_file = bench.tmp / "pids.sibling"
        with trio.fail_after(2):
            while not sibling_file.exists() or not sibling_file.read_text().strip():  # noqa: ASYNC110  # a file, nothing to wait on
                await trio.sleep(0.02)
        sibling_child = int(sibling_file.read_text())
        assert await still_running([sibling_child]) == [sibling_child]
        async with started.handle.inbox:
            await started.handle.inbox.send(CancelRun())

    assert await still_running([sibling_child]) == []
