"""The conversation between the run actor and its task actors."""

from __future__ import annotations

import datetime as dt

import attrs

from pit.spec.states import TaskState

# --- commands to a task actor --------------------------------------------------------------


@attrs.frozen(kw_only=True)
class StopTask:
    """Stop gracefully: SIGTERM to the task's process group, a grace period, then SIGKILL."""

    reason: str
    """Recorded as the task's error, e.g. "cancelled" or "run timed out after 10m"."""


@attrs.frozen(kw_only=True)
class KillTask:
    """Stop at once: SIGKILL to the process group, no grace (a second Ctrl-C)."""


TaskCommand = StopTask | KillTask

# --- events from a task actor to its run ---------------------------------------------------


@attrs.frozen(kw_only=True)
class AttemptStarted:
    task: str
    attempt: int
    at: dt.datetime
    worker: str | None = None
    """The Dask worker it runs on; None: on pit's machine."""


@attrs.frozen(kw_only=True)
class TaskQueued:
    """The task's next attempt waits for a slot of its pool."""

    task: str
    pool: str
    at: dt.datetime


@attrs.frozen(kw_only=True)
class AttemptFailed:
    """An attempt failed and the task will try again after `retry_in` seconds."""

    task: str
    attempt: int
    exit_code: int | None
    error: str
    retry_in: float
    at: dt.datetime
    """When the attempt ended."""


@attrs.frozen(kw_only=True)
class TaskFinished:
    task: str
    state: TaskState
    """SUCCESS or FAILED: the only ends a task actor reaches by itself; SKIPPED when it was
    stopped while queued for its pool, before its first attempt."""
    attempts: int
    exit_code: int | None
    error: str | None
    at: dt.datetime
    hook: str | None = None
    """How its `on_failure` or `on_success` hook went ("on_failure: exited 0"), if it has one."""


@attrs.frozen(kw_only=True)
class TaskOutput:
    """A chunk of a task's combined stdout/stderr, sent only when live output was asked for."""

    task: str
    data: bytes


TaskEvent = TaskQueued | AttemptStarted | AttemptFailed | TaskFinished
