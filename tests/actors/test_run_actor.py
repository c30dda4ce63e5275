"""The run actor on trio's fake clock: ordering, concurrency, retries, timeouts, cancellation.

Each test drives a `RunActor` whose tasks are `ScriptedLaunch`es (see `scripted.py`), so minutes of
retries and timeouts take milliseconds and every start time is exact.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs
import pytest
import trio

from pit.actors.run import RunActor, RunHandle
from pit.clock import FixedClock
from pit.messages.run import (
    CancelRun,
    RunEnded,
    RunEvent,
    RunRecord,
    RunStarted,
    StopRun,
    TaskRecord,
    TaskUpdated,
)
from pit.messages.task import TaskOutput
from pit.spec.dag import DagSpec, RequiresElse, Runner, RunnerKind, TaskSpec
from pit.spec.states import RunState, TaskState

from .loglines import log_lines
from .scripted import Script, Step

T0 = dt.datetime(2024, 5, 1, 6, 0, tzinfo=dt.UTC)
RUNNER = Runner(kind=RunnerKind.CUSTOM, prefix=("x",))  # never used: the launch is scripted

S = TaskState


def task(name: str, *depends_on: str, **options: object) -> TaskSpec:
    return TaskSpec(
        name=name,
        script=f"{name}.sh",
        runner=RUNNER,
        depends_on=depends_on,
        **options,  # type: ignore[arg-type]
    )


def dag(*tasks: TaskSpec, timeout: float | None = None) -> DagSpec:
    return DagSpec(name="demo", tasks=tasks, timeout=timeout)


@attrs.frozen
class Finished:
    record: RunRecord
    events: list[RunEvent]

    def task(self, name: str) -> TaskRecord:
        (record,) = [t for t in self.record.tasks if t.name == name]
        return record

    def states(self) -> dict[str, TaskState]:
        return {t.name: t.state for t in self.record.tasks}

    def states_when_first(self, state: TaskState) -> dict[str, TaskState]:
        """Every task's state as observers knew it when some task first reached `state`."""
        known: dict[str, TaskState] = {}
        for event in self.events:
            if isinstance(event, RunStarted):
                known = {t.name: t.state for t in event.record.tasks}
            elif isinstance(event, TaskUpdated):
                known[event.record.name] = event.record.state
                if event.record.state is state:
                    return known
        raise AssertionError(f"no task reached {state}")

    def updates(self, name: str) -> list[TaskRecord]:
        """Every record of task `name` that observers saw, in order."""
        return [
            e.record for e in self.events if isinstance(e, TaskUpdated) and e.record.name == name
        ]


async def run_dag(
    spec: DagSpec,
    script: Script,
    logs_dir: Path,
    *,
    during: Callable[[RunHandle], Awaitable[None]] | None = None,
    **options: object,
) -> Finished:
    """Run `spec` to its end, collecting every event an observer receives. `during` runs alongside,
    with the run's handle (to send it commands)."""
    to_observer, events_received = trio.open_memory_channel[RunEvent](0)
    events: list[RunEvent] = []
    actor = RunActor(
        dag=spec,
        run_id="run-1",
        trigger="test",
        launch=script.launch,
        logs_dir=logs_dir,
        clock=FixedClock(T0),
        observers=(to_observer,),
        **options,  # type: ignore[arg-type]
    )

    async def collect() -> None:
        async with events_received:
            async for event in events_received:
                events.append(event)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(collect)
        handle = await nursery.start(actor.run)
        async with handle.inbox:
            if during is not None:
                await during(handle)
    return Finished(record=actor.record, events=events)


def cancel_at(seconds: float, *, kill: bool = False) -> Callable[[RunHandle], Awaitable[None]]:
    async def cancel(handle: RunHandle) -> None:
        await trio.sleep(seconds)
        async with handle.inbox:
            await handle.inbox.send(CancelRun(kill=kill))

    return cancel


# --- order and parallelism ------------------------------------------------------------------


async def test_independent_tasks_start_together_and_dependants_wait_for_all_their_upstreams(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    script = Script(
        {"a": [Step(2)], "b": [Step(3)], "join": [Step(1)], "last": [Step(1)]},
    )
    spec = dag(task("a"), task("b"), task("join", "a", "b"), task("last", "join"))

    run = await run_dag(spec, script, tmp_path)

    assert script.starts("a") == [0]
    assert script.starts("b") == [0]
    assert script.starts("join") == [pytest.approx(3)]
    assert script.starts("last") == [pytest.approx(4)]
    assert run.record.state is RunState.SUCCESS
    assert run.states() == dict.fromkeys(["a", "b", "join", "last"], S.SUCCESS)
    assert all(t.attempts == 1 and t.exit_code == 0 and t.error is None for t in run.record.tasks)


async def test_a_chain_runs_in_topological_order_whatever_the_declaration_order(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    script = Script({name: [Step(1)] for name in "abcd"})
    spec = dag(task("d", "c"), task("b", "a"), task("c", "b"), task("a"))

    run = await run_dag(spec, script, tmp_path)

    assert script.started_tasks() == ["a", "b", "c", "d"]
    assert script.most_running == 1
    assert run.record.state is RunState.SUCCESS


async def test_observers_see_the_run_start_every_change_and_the_final_record(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    script = Script({"a": [Step(1)], "b": [Step(1)]})

    run = await run_dag(dag(task("a"), task("b", "a")), script, tmp_path)

    first, *middle, last = run.events
    assert isinstance(first, RunStarted)
    assert first.record.state is RunState.RUNNING
    assert first.record.started_at == T0
    assert all(isinstance(e, TaskUpdated) for e in middle)
    assert isinstance(last, RunEnded)
    assert last.record == run.record
    assert last.record.ended_at == T0
    assert [u.state for u in run.updates("a")] == [S.RUNNING, S.SUCCESS]
    assert [u.state for u in run.updates("b")] == [S.RUNNING, S.SUCCESS]
    # b starts only after a's success was published
    states_seen = [(e.record.name, e.record.state) for e in middle if isinstance(e, TaskUpdated)]
    assert states_seen.index(("a", S.SUCCESS)) < states_seen.index(("b", S.RUNNING))
    # the start and the updates are enough for an observer to rebuild the run
    assert [t.state for t in first.record.tasks] == [S.PENDING, S.PENDING]
    assert tuple(run.updates(name)[-1] for name in ("a", "b")) == last.record.tasks


async def test_an_observer_that_went_away_does_not_stop_the_run(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    gone_send, gone_receive = trio.open_memory_channel[RunEvent](0)
    await gone_receive.aclose()
    script = Script({"a": [Step(1)]})
    actor = RunActor(
        dag=dag(task("a")),
        run_id="run-1",
        trigger="test",
        launch=script.launch,
        logs_dir=tmp_path,
        clock=FixedClock(T0),
        observers=(gone_send,),
    )

    record = await actor.run()

    assert record.state is RunState.SUCCESS
    assert script.starts("a") == [0]


async def test_the_live_output_channel_is_closed_when_the_run_ends(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    # a view reading live output ends on EndOfChannel; without it `pit run -v` hangs at the end
    output, received = trio.open_memory_channel[TaskOutput](0)
    script = Script({"a": [Step(1)], "b": [Step(1)]})

    await run_dag(dag(task("a"), task("b")), script, tmp_path, output=output)

    with pytest.raises(trio.EndOfChannel):
        received.receive_nowait()


async def test_each_attempt_is_logged_under_a_header_naming_it(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    script = Script({"a": [Step(1, exit_code=1), Step(1)]})

    await run_dag(dag(task("a", retries=1)), script, tmp_path)

    assert log_lines((tmp_path / "a.log").read_text()) == [
        "=== attempt 1/2",
        "scripted a attempt 1",
        "=== attempt 2/2",
        "scripted a attempt 2",
    ]


# --- concurrency cap ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_active", "expected_starts"),
    [
        (1, [0, 1, 2, 3, 4, 5]),
        (2, [0, 0, 1, 1, 2, 2]),
        (4, [0, 0, 0, 0, 1, 1]),
        (10, [0, 0, 0, 0, 0, 0]),
    ],
)
async def test_no_more_than_max_active_tasks_run_at_once(
    autojump_clock: trio.abc.Clock, tmp_path: Path, max_active: int, expected_starts: list[int]
) -> None:
    names = [f"t{i}" for i in range(6)]
    script = Script({name: [Step(1)] for name in names})

    run = await run_dag(dag(*(task(n) for n in names)), script, tmp_path, max_active=max_active)

    assert script.most_running == min(max_active, 6)
    assert sorted(a.started for a in script.attempts) == pytest.approx(expected_starts)
    assert run.record.state is RunState.SUCCESS


async def test_the_cap_counts_a_task_waiting_to_retry_as_running(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    # flaky fails once and waits 10s before its retry: it keeps its slot meanwhile
    script = Script({"flaky": [Step(1, exit_code=1), Step(1)], "other": [Step(1)]})
    spec = dag(task("flaky", retries=1, retry_delay=10), task("other"))

    run = await run_dag(spec, script, tmp_path, max_active=1)

    assert script.starts("flaky") == [0, pytest.approx(11)]
    assert script.starts("other") == [pytest.approx(12)]
    assert run.record.state is RunState.SUCCESS


# --- retries and backoff --------------------------------------------------------------------


async def test_retries_wait_retry_delay_times_backoff_to_the_power_of_the_retry(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    fail = Step(1, exit_code=1)
    script = Script({"a": [fail, fail, fail, Step(1)]})
    spec = dag(task("a", retries=3, retry_delay=10, retry_backoff=2))

    run = await run_dag(spec, script, tmp_path)

    # attempt n ends at start + 1, then waits 10 * 2 ** (n - 1)
    assert script.starts("a") == pytest.approx([0, 1 + 10, 12 + 20, 33 + 40])
    assert [u.retry_in for u in run.updates("a") if u.retry_in is not None] == [10, 20, 40]
    final = run.task("a")
    assert final.state is S.SUCCESS
    assert final.attempts == 4
    assert final.exit_code == 0
    assert final.error is None
    assert final.retry_in is None


async def test_each_attempt_of_a_retried_task_is_kept_in_its_history(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    script = Script({"a": [Step(1, exit_code=3), Step(2)], "b": [Step(1)]})

    run = await run_dag(dag(task("a", retries=1, retry_delay=10), task("b")), script, tmp_path)

    history = run.task("a").history
    assert [(h.number, h.exit_code, h.error) for h in history] == [
        (1, 3, "exit code 3"),
        (2, 0, None),
    ]
    # The wall clock is fixed here: each attempt has its start and its end, nothing more.
    assert all(h.started_at == T0 and h.ended_at == T0 for h in history)
    assert run.task("b").history == ()  # tried once: the task itself is its attempt


async def test_without_backoff_every_retry_waits_the_same_delay(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    script = Script({"a": [Step(2, exit_code=1)]})

    run = await run_dag(dag(task("a", retries=2, retry_delay=5)), script, tmp_path)

    assert script.starts("a") == pytest.approx([0, 7, 14])
    assert run.task("a").attempts == 3


async def test_while_waiting_to_retry_the_task_shows_the_failed_attempt(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    script = Script({"a": [Step(1, exit_code=7), Step(1)]})

    run = await run_dag(dag(task("a", retries=1, retry_delay=30)), script, tmp_path)

    waiting, retrying = run.updates("a")[1:3]
    assert (waiting.state, waiting.exit_code, waiting.error, waiting.retry_in) == (
        S.RUNNING,
        7,
        "exit code 7",
        30,
    )
    # the next attempt clears the old error
    assert (retrying.state, retrying.attempts, retrying.error, retrying.retry_in) == (
        S.RUNNING,
        2,
        None,
        None,
    )


async def test_a_task_that_fails_every_attempt_ends_failed_with_its_last_error(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    script = Script({"a": [Step(1, exit_code=1), Step(1, exit_code=3)]})

    run = await run_dag(dag(task("a", retries=2, retry_delay=1)), script, tmp_path)

    final = run.task("a")
    assert (final.state, final.attempts, final.exit_code, final.error) == (
        S.FAILED,
        3,
        3,
        "exit code 3",
    )
    assert len(script.starts("a")) == 3
    assert run.record.state is RunState.FAILED


# --- failure propagation --------------------------------------------------------------------


async def test_everything_downstream_of_a_failure_is_upstream_failed_and_never_starts(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    #   bad -> mid -> end          good -> after_good
    #      \________________ both /
    script = Script(
        {
            "bad": [Step(1, exit_code=2)],
            "mid": [Step(1)],
            "end": [Step(1)],
            "good": [Step(5)],
            "after_good": [Step(1)],
            "both": [Step(1)],
        }
    )
    spec = dag(
        task("bad"),
        task("mid", "bad"),
        task("end", "mid"),
        task("good"),
        task("after_good", "good"),
        task("both", "bad", "good"),
    )

    run = await run_dag(spec, script, tmp_path)

    assert run.states() == {
        "bad": S.FAILED,
        "mid": S.UPSTREAM_FAILED,
        "end": S.UPSTREAM_FAILED,
        "good": S.SUCCESS,
        "after_good": S.SUCCESS,
        "both": S.UPSTREAM_FAILED,
    }
    assert set(script.started_tasks()) == {"bad", "good", "after_good"}
    assert script.starts("after_good") == [pytest.approx(5)]
    for name in ("mid", "end", "both"):
        assert run.task(name).error == "upstream task 'bad' did not succeed"
        assert run.task(name).attempts == 0
    assert run.record.state is RunState.FAILED
    # upstream_failed is published as soon as bad fails, while good still runs
    assert run.states_when_first(S.UPSTREAM_FAILED)["good"] is S.RUNNING


async def test_a_task_is_upstream_failed_only_after_its_upstream_exhausted_its_retries(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    script = Script({"a": [Step(1, exit_code=1)], "b": [Step(1)]})

    run = await run_dag(dag(task("a", retries=2, retry_delay=3), task("b", "a")), script, tmp_path)

    marked = next(u for u in run.updates("b") if u.state is S.UPSTREAM_FAILED)
    assert marked == run.task("b")
    assert run.task("a").attempts == 3
    assert script.started_tasks() == ["a"]


# --- task timeout ---------------------------------------------------------------------------


async def test_an_attempt_past_its_timeout_is_cancelled_and_the_task_fails(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    script = Script({"slow": [Step(600)], "after": [Step(1)]})

    run = await run_dag(dag(task("slow", timeout=5), task("after", "slow")), script, tmp_path)

    (attempt,) = script.attempts
    assert attempt.cancelled
    assert attempt.ended == pytest.approx(5)
    slow = run.task("slow")
    assert (slow.state, slow.attempts, slow.error) == (S.FAILED, 1, "timed out after 5.0s")
    assert run.task("after").state is S.UPSTREAM_FAILED
    assert run.record.state is RunState.FAILED


async def test_a_timed_out_attempt_is_retried_after_the_retry_delay(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    script = Script({"a": [Step(600), Step(1)]})

    run = await run_dag(dag(task("a", timeout=5, retries=1, retry_delay=2)), script, tmp_path)

    assert script.starts("a") == pytest.approx([0, 7])
    assert [a.cancelled for a in script.attempts] == [True, False]
    timed_out = next(u for u in run.updates("a") if u.retry_in is not None)
    assert timed_out.error == "timed out after 5.0s"
    assert (run.task("a").state, run.task("a").attempts) == (S.SUCCESS, 2)
    assert run.record.state is RunState.SUCCESS


async def test_the_timeout_bounds_each_attempt_not_the_whole_task(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    # three attempts of 4s each: 12s in all, yet no attempt passes the 5s timeout
    script = Script({"a": [Step(4, exit_code=1), Step(4, exit_code=1), Step(4)]})

    run = await run_dag(dag(task("a", timeout=5, retries=2)), script, tmp_path)

    assert not any(a.cancelled for a in script.attempts)
    assert run.task("a").state is S.SUCCESS


# --- DAG timeout ----------------------------------------------------------------------------


async def test_the_dag_timeout_fails_running_tasks_and_skips_those_not_started(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    script = Script(
        {"quick": [Step(3)], "long": [Step(60)], "after_long": [Step(1)], "other": [Step(100)]}
    )
    spec = dag(
        task("quick"), task("long", "quick"), task("after_long", "long"), task("other"), timeout=10
    )

    run = await run_dag(spec, script, tmp_path)

    reason = "run timed out after 10.0s"
    assert run.states() == {
        "quick": S.SUCCESS,
        "long": S.FAILED,
        "after_long": S.SKIPPED,
        "other": S.FAILED,
    }
    assert run.task("long").error == reason
    assert run.task("other").error == reason
    assert run.task("after_long").error == reason
    assert run.record.state is RunState.FAILED
    assert run.record.error == reason
    assert {a.task: a.ended for a in script.attempts if a.cancelled} == {
        "long": pytest.approx(10),
        "other": pytest.approx(10),
    }
    assert "after_long" not in script.started_tasks()


async def test_the_dag_timeout_skips_tasks_still_queued_behind_the_cap(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    script = Script({"a": [Step(60)], "b": [Step(1)]})

    run = await run_dag(dag(task("a"), task("b"), timeout=5), script, tmp_path, max_active=1)

    assert run.states() == {"a": S.FAILED, "b": S.SKIPPED}
    assert script.started_tasks() == ["a"]


async def test_the_dag_timeout_ends_a_task_waiting_to_retry_without_another_attempt(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    script = Script({"a": [Step(1, exit_code=1)]})

    run = await run_dag(dag(task("a", retries=5, retry_delay=100), timeout=10), script, tmp_path)

    assert script.starts("a") == [0]
    final = run.task("a")
    assert (final.state, final.attempts, final.error) == (
        S.FAILED,
        1,
        "run timed out after 10.0s",
    )
    assert run.record.state is RunState.FAILED


async def test_a_run_that_ends_before_its_dag_timeout_succeeds(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    script = Script({"a": [Step(3)]})

    before = trio.current_time()
    run = await run_dag(dag(task("a"), timeout=3600), script, tmp_path)

    assert run.record.state is RunState.SUCCESS
    assert run.record.error is None
    assert trio.current_time() - before == pytest.approx(3)  # the timer did not hold the run open


# --- cancellation ---------------------------------------------------------------------------


async def test_cancel_run_fails_running_tasks_skips_pending_ones_and_cancels_the_run(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    script = Script({"a": [Step(100)], "b": [Step(1)], "c": [Step(100)]})
    spec = dag(task("a"), task("b", "a"), task("c"))

    run = await run_dag(spec, script, tmp_path, during=cancel_at(5))

    assert run.states() == {"a": S.FAILED, "b": S.SKIPPED, "c": S.FAILED}
    assert {t.name: t.error for t in run.record.tasks} == dict.fromkeys("abc", "cancelled")
    assert run.record.state is RunState.CANCELLED
    assert run.record.error == "cancelled"
    assert [(a.task, a.cancelled) for a in script.attempts] == [("a", True), ("c", True)]
    assert [a.ended for a in script.attempts] == pytest.approx([5, 5])
    assert isinstance(run.events[-1], RunEnded)


async def test_cancel_run_with_kill_also_ends_the_run_cancelled(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    script = Script({"a": [Step(100)], "b": [Step(1)]})

    run = await run_dag(
        dag(task("a"), task("b", "a")), script, tmp_path, during=cancel_at(5, kill=True)
    )

    assert run.states() == {"a": S.FAILED, "b": S.SKIPPED}
    assert run.record.state is RunState.CANCELLED
    assert script.attempts[0].ended == pytest.approx(5)


async def test_cancel_run_during_a_retry_wait_ends_the_task_without_another_attempt(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    script = Script({"a": [Step(1, exit_code=1)]})

    run = await run_dag(
        dag(task("a", retries=3, retry_delay=60)), script, tmp_path, during=cancel_at(10)
    )

    assert script.starts("a") == [0]
    assert (run.task("a").state, run.task("a").error) == (S.FAILED, "cancelled")
    assert run.record.state is RunState.CANCELLED


async def test_a_second_cancel_is_harmless(autojump_clock: trio.abc.Clock, tmp_path: Path) -> None:
    async def cancel_twice(handle: RunHandle) -> None:
        async with handle.inbox:
            await trio.sleep(5)
            await handle.inbox.send(CancelRun())
            await handle.inbox.send(CancelRun(kill=True))

    script = Script({"a": [Step(100)]})

    run = await run_dag(dag(task("a")), script, tmp_path, during=cancel_twice)

    assert run.task("a").state is S.FAILED
    assert run.task("a").error == "cancelled"  # the first reason stays
    assert run.record.state is RunState.CANCELLED


async def test_an_outer_cancellation_still_settles_every_task_and_tells_observers(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    script = Script({"a": [Step(100)], "b": [Step(1)], "done": [Step(1)]})
    spec = dag(task("done"), task("a"), task("b", "a"))
    to_observer, events_received = trio.open_memory_channel[RunEvent](0)
    events: list[RunEvent] = []
    actor = RunActor(
        dag=spec,
        run_id="run-1",
        trigger="test",
        launch=script.launch,
        logs_dir=tmp_path,
        clock=FixedClock(T0),
        observers=(to_observer,),
    )

    async def collect() -> None:
        async with events_received:
            async for event in events_received:
                events.append(event)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(collect)
        with trio.move_on_after(5):
            await actor.run()

    assert {t.name: t.state for t in actor.record.tasks} == {
        "done": S.SUCCESS,
        "a": S.FAILED,
        "b": S.SKIPPED,
    }
    assert actor.record.state is RunState.CANCELLED
    assert isinstance(events[-1], RunEnded)
    assert events[-1].record == actor.record
    assert [(a.task, a.cancelled) for a in script.attempts] == [("done", False), ("a", True)]


# --- only_task ------------------------------------------------------------------------------


async def test_only_task_runs_that_task_alone_and_skips_the_others(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    script = Script({"a": [Step(1)], "b": [Step(1)], "c": [Step(1)]})
    spec = dag(task("a"), task("b", "a"), task("c", "b"))

    run = await run_dag(spec, script, tmp_path, only_task="b")

    assert script.started_tasks() == ["b"]
    assert script.starts("b") == [0]
    assert run.states() == {"a": S.SKIPPED, "b": S.SUCCESS, "c": S.SKIPPED}
    assert run.record.state is RunState.SUCCESS


async def test_only_task_that_fails_leaves_its_dependants_skipped_not_upstream_failed(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    script = Script({"a": [Step(1)], "b": [Step(1, exit_code=4)], "c": [Step(1)]})
    spec = dag(task("a"), task("b", "a"), task("c", "b"))

    run = await run_dag(spec, script, tmp_path, only_task="b")

    assert run.states() == {"a": S.SKIPPED, "b": S.FAILED, "c": S.SKIPPED}
    assert run.task("b").error == "exit code 4"
    assert run.record.state is RunState.FAILED


# --- a run that cannot go on -----------------------------------------------------------------


async def test_stop_run_stops_tasks_in_order_and_fails_the_run_with_its_reason_masked(
    tmp_path: Path,
) -> None:
    """StopRun (run.json cannot be written): running tasks are stopped, pending ones skipped,
    the run fails; a secret quoted in the reason never reaches the record."""
    script = Script({"a": [Step(10)], "b": [Step(1)]})

    async def stop(handle: RunHandle) -> None:
        await trio.sleep(1)
        async with handle.inbox:
            await handle.inbox.send(StopRun(reason="cannot write /x?password=hunter22"))

    finished = await run_dag(
        dag(task("a"), task("b", "a")),
        script,
        tmp_path,
        during=stop,
        secret_values=frozenset({"hunter22"}),
    )

    assert finished.record.state is RunState.FAILED
    assert finished.record.error == "cannot write /x?password=***"
    assert finished.states() == {"a": TaskState.FAILED, "b": TaskState.SKIPPED}
    assert finished.task("a").error == "cannot write /x?password=***"
    assert script.attempts[0].cancelled


# --- required DAGs ----------------------------------------------------------------------------


def required(ready_after: float | None) -> Callable[[], Awaitable[str | None]]:
    """A check of the required DAGs that they pass once `ready_after` seconds have gone by
    (never when None), counting the checks."""
    start = trio.current_time()

    async def unmet() -> str | None:
        unmet.checks += 1  # type: ignore[attr-defined]
        if ready_after is not None and trio.current_time() - start >= ready_after:
            return None
        return "required DAG ingest has no success within 6h (none yet)"

    unmet.checks = 0  # type: ignore[attr-defined]
    return unmet


async def test_a_run_waits_for_its_required_dags_then_starts(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    from pit.actors.run import REQUIRES_POLL

    script = Script({"a": [Step(1)]})
    spec = attrs.evolve(dag(task("a")), requires_wait=3600.0)
    check = required(ready_after=2 * REQUIRES_POLL)
    run = await run_dag(spec, script, tmp_path, requirements=check)
    assert script.starts("a") == [pytest.approx(2 * REQUIRES_POLL)]
    assert check.checks == 3  # type: ignore[attr-defined]
    assert run.record.state is RunState.SUCCESS


@pytest.mark.parametrize(
    ("requires_else", "state", "error"),
    [
        ("fail", RunState.FAILED, "required DAG ingest has no success within 6h (none yet)"),
        ("skip", RunState.CANCELLED, "skipped: required DAG ingest has no success within 6h"),
    ],
)
async def test_past_its_wait_a_run_fails_or_is_skipped_and_no_task_runs(
    autojump_clock: trio.abc.Clock,
    tmp_path: Path,
    requires_else: str,
    state: RunState,
    error: str,
) -> None:
    script = Script({"a": [Step(1)]})
    spec = attrs.evolve(
        dag(task("a")), requires_wait=100.0, requires_else=RequiresElse(requires_else)
    )
    run = await run_dag(spec, script, tmp_path, requirements=required(None))
    assert script.started_tasks() == []
    assert run.record.state is state
    assert run.record.error is not None
    assert run.record.error.startswith(error)
    assert run.states() == {"a": S.SKIPPED}
    assert run.record.ended_at is not None


async def test_a_run_waiting_for_its_required_dags_can_be_cancelled(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    script = Script({"a": [Step(1)]})
    spec = attrs.evolve(dag(task("a")), requires_wait=3600.0)
    run = await run_dag(spec, script, tmp_path, requirements=required(None), during=cancel_at(45))
    assert script.started_tasks() == []
    assert run.record.state is RunState.CANCELLED
    assert run.states() == {"a": S.SKIPPED}
