"""Run and task lifecycles as transition tables, checked without an event loop."""

from __future__ import annotations

import itertools

import pytest

from pit.spec.states import (
    CANCELLED,
    RUN_TRANSITIONS,
    TASK_TRANSITIONS,
    RunState,
    TaskState,
    TransitionError,
    check_run_transition,
    check_task_transition,
    cut_short,
    run_outcome,
)

TASK_ALLOWED = {
    (TaskState.PENDING, TaskState.QUEUED),  # its pool is full
    (TaskState.QUEUED, TaskState.RUNNING),
    (TaskState.QUEUED, TaskState.SKIPPED),  # stopped while it waited, before its first attempt
    (TaskState.QUEUED, TaskState.FAILED),  # stopped while it waited to retry
    (TaskState.RUNNING, TaskState.QUEUED),  # a retry waits for its pool
    (TaskState.PENDING, TaskState.RUNNING),
    (TaskState.PENDING, TaskState.SKIPPED),
    (TaskState.PENDING, TaskState.UPSTREAM_FAILED),
    (TaskState.RUNNING, TaskState.RUNNING),  # a retry
    (TaskState.RUNNING, TaskState.SUCCESS),
    (TaskState.RUNNING, TaskState.FAILED),
}
RUN_ALLOWED = {
    (RunState.PENDING, RunState.RUNNING),
    (RunState.PENDING, RunState.FAILED),
    (RunState.PENDING, RunState.CANCELLED),
    (RunState.RUNNING, RunState.SUCCESS),
    (RunState.RUNNING, RunState.FAILED),
    (RunState.RUNNING, RunState.CANCELLED),
}


def test_every_state_has_a_row() -> None:
    assert set(TASK_TRANSITIONS) == set(TaskState)
    assert set(RUN_TRANSITIONS) == set(RunState)


def test_state_values_are_the_names_users_see() -> None:
    assert [s.value for s in TaskState] == [
        "pending",
        "queued",
        "running",
        "success",
        "failed",
        "skipped",
        "upstream_failed",
    ]
    assert [s.value for s in RunState] == ["pending", "running", "success", "failed", "cancelled"]


@pytest.mark.parametrize(("old", "new"), list(itertools.product(TaskState, TaskState)))
def test_task_transition(old: TaskState, new: TaskState) -> None:
    if (old, new) in TASK_ALLOWED:
        assert check_task_transition(old, new) is new
    else:
        with pytest.raises(
            TransitionError, match=f"task cannot go from {old.value} to {new.value}"
        ):
            check_task_transition(old, new)


@pytest.mark.parametrize(("old", "new"), list(itertools.product(RunState, RunState)))
def test_run_transition(old: RunState, new: RunState) -> None:
    if (old, new) in RUN_ALLOWED:
        assert check_run_transition(old, new) is new
    else:
        with pytest.raises(TransitionError, match=f"run cannot go from {old.value} to {new.value}"):
            check_run_transition(old, new)


def test_terminal_states_are_exactly_those_with_no_way_out() -> None:
    assert {s for s in TaskState if s.terminal} == {s for s in TaskState if not TASK_TRANSITIONS[s]}
    assert {s for s in RunState if s.terminal} == {s for s in RunState if not RUN_TRANSITIONS[s]}
    assert {s for s in TaskState if not s.terminal} == {
        TaskState.PENDING,
        TaskState.QUEUED,
        TaskState.RUNNING,
    }
    assert {s for s in RunState if not s.terminal} == {RunState.PENDING, RunState.RUNNING}


def test_a_task_with_retries_runs_again_before_it_finishes() -> None:
    state = TaskState.PENDING
    for new in (TaskState.RUNNING, TaskState.RUNNING, TaskState.RUNNING, TaskState.SUCCESS):
        state = check_task_transition(state, new)

    assert state is TaskState.SUCCESS
    assert state.terminal


def test_transition_error_is_a_bug_not_a_user_error() -> None:
    from pit.errors import PitError

    assert not issubclass(TransitionError, PitError)


def test_a_task_cut_short_fails_if_it_ran_and_is_skipped_if_it_had_not_started() -> None:
    assert cut_short(TaskState.RUNNING, 1) is TaskState.FAILED
    assert cut_short(TaskState.PENDING, 0) is TaskState.SKIPPED
    assert cut_short(TaskState.QUEUED, 0) is TaskState.SKIPPED  # waited for its pool
    assert cut_short(TaskState.QUEUED, 1) is TaskState.FAILED  # ran, and waited to retry
    for ended in (TaskState.SUCCESS, TaskState.FAILED, TaskState.UPSTREAM_FAILED):
        assert cut_short(ended, 1) is ended


def test_the_run_outcome_from_its_tasks_and_why_it_stopped() -> None:
    fine = [TaskState.SUCCESS, TaskState.SKIPPED]
    assert run_outcome(fine, stop_reason=None) is RunState.SUCCESS
    assert run_outcome(fine, stop_reason="run timed out after 1s") is RunState.FAILED
    assert run_outcome(fine, stop_reason=CANCELLED) is RunState.CANCELLED
    assert run_outcome([*fine, TaskState.UPSTREAM_FAILED], stop_reason=None) is RunState.FAILED
