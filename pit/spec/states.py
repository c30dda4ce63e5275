"""Run and task lifecycles as transition tables: data, tested without an event loop."""

from __future__ import annotations

import enum
from collections.abc import Iterable


class TaskState(enum.Enum):
    PENDING = "pending"
    QUEUED = "queued"
    """Its turn has come, and it waits for a slot of its pool."""
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"
    UPSTREAM_FAILED = "upstream_failed"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL_TASK


class RunState(enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"
    """Stopped by the user (Ctrl-C) before it could finish."""

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL_RUN


_TERMINAL_TASK = frozenset(
    {TaskState.SUCCESS, TaskState.FAILED, TaskState.SKIPPED, TaskState.UPSTREAM_FAILED}
)
_TERMINAL_RUN = frozenset({RunState.SUCCESS, RunState.FAILED, RunState.CANCELLED})

TASK_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.PENDING: frozenset(
        {TaskState.QUEUED, TaskState.RUNNING, TaskState.SKIPPED, TaskState.UPSTREAM_FAILED}
    ),
    TaskState.QUEUED: frozenset({TaskState.RUNNING, TaskState.SKIPPED, TaskState.FAILED}),
    # running -> running is a retry: a new attempt of the same task (queued again first, when
    # its pool is full).
    TaskState.RUNNING: frozenset(
        {TaskState.RUNNING, TaskState.QUEUED, TaskState.SUCCESS, TaskState.FAILED}
    ),
    TaskState.SUCCESS: frozenset(),
    TaskState.FAILED: frozenset(),
    TaskState.SKIPPED: frozenset(),
    TaskState.UPSTREAM_FAILED: frozenset(),
}

RUN_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.PENDING: frozenset({RunState.RUNNING, RunState.FAILED, RunState.CANCELLED}),
    RunState.RUNNING: frozenset({RunState.SUCCESS, RunState.FAILED, RunState.CANCELLED}),
    RunState.SUCCESS: frozenset(),
    RunState.FAILED: frozenset(),
    RunState.CANCELLED: frozenset(),
}


def cut_short(state: TaskState, attempts: int) -> TaskState:
    """The end of a task whose run ended before it did: a task that ran (running, or queued
    for its pool again to retry) failed, one that never started is skipped (the rule for a
    stop, a crash, a dead owner alike)."""
    if state.terminal:
        return state
    ran = state is TaskState.RUNNING or (state is TaskState.QUEUED and attempts > 0)
    return TaskState.FAILED if ran else TaskState.SKIPPED


def run_outcome(tasks: Iterable[TaskState], *, stop_reason: str | None) -> RunState:
    """How a run ended, from its tasks' final states and why it was stopped (None: it was not;
    "cancelled": by the user): cancelled, success when nothing stopped it and every task
    succeeded or was skipped, failed otherwise."""
    if stop_reason == CANCELLED:
        return RunState.CANCELLED
    if stop_reason is None and all(t in (TaskState.SUCCESS, TaskState.SKIPPED) for t in tasks):
        return RunState.SUCCESS
    return RunState.FAILED


CANCELLED = "cancelled"
"""The stop reason (and task error) of a run the user stopped."""


class TransitionError(Exception):
    """A pit bug: an actor tried a state change the lifecycle does not allow."""


def check_task_transition(old: TaskState, new: TaskState) -> TaskState:
    if new not in TASK_TRANSITIONS[old]:
        raise TransitionError(f"task cannot go from {old.value} to {new.value}")
    return new


def check_run_transition(old: RunState, new: RunState) -> RunState:
    if new not in RUN_TRANSITIONS[old]:
        raise TransitionError(f"run cannot go from {old.value} to {new.value}")
    return new
