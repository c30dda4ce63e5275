"""Run and task lifecycles as transition tables: data, tested without an event loop."""

from __future__ import annotations

import enum


class TaskState(enum.Enum):
    PENDING = "pending"
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
    TaskState.PENDING: frozenset({TaskState.RUNNING, TaskState.SKIPPED, TaskState.UPSTREAM_FAILED}),
    # running -> running is a retry: a new attempt of the same task.
    TaskState.RUNNING: frozenset({TaskState.RUNNING, TaskState.SUCCESS, TaskState.FAILED}),
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
