"""A run's commands, its records, and the events its observers (manifest writer, views) receive."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from pit.messages.task import TaskEvent
from pit.spec.states import RunState, TaskState

# --- records: what a run is, at any moment --------------------------------------------------


@attrs.frozen(kw_only=True)
class TaskRecord:
    name: str
    state: TaskState = TaskState.PENDING
    attempts: int = 0
    exit_code: int | None = None
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    error: str | None = None
    retry_in: float | None = None
    """Set while the task waits to retry: seconds from the failed attempt to the next one."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state.value,
            "attempts": self.attempts,
            "exit_code": self.exit_code,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "error": self.error,
        }


@attrs.frozen(kw_only=True)
class RunRecord:
    run_id: str
    dag: str
    trigger: str
    """What started the run: "manual" for `pit run`; later cron, webhook, ftp."""
    state: RunState = RunState.PENDING
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    error: str | None = None
    tasks: tuple[TaskRecord, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "run_id": self.run_id,
            "dag": self.dag,
            "trigger": self.trigger,
            "state": self.state.value,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "error": self.error,
            "tasks": [task.to_json() for task in self.tasks],
        }


def _iso(at: dt.datetime | None) -> str | None:
    return at.isoformat(timespec="milliseconds") if at else None


# --- commands to a run actor ---------------------------------------------------------------


@attrs.frozen(kw_only=True)
class CancelRun:
    """Stop the run: running tasks are stopped, tasks not started become skipped."""

    kill: bool = False
    """Kill running tasks at once instead of the SIGTERM-grace-SIGKILL escalation."""


@attrs.frozen(kw_only=True)
class RunDeadlinePassed:
    """The DAG timeout ran out (sent by the run's own timer)."""


RunInbox = CancelRun | RunDeadlinePassed | TaskEvent

# --- events to observers -------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RunStarted:
    record: RunRecord


@attrs.frozen(kw_only=True)
class TaskUpdated:
    record: TaskRecord
    run: RunRecord
    """The whole run as it stands after this change."""


@attrs.frozen(kw_only=True)
class RunFinished:
    record: RunRecord


RunEvent = RunStarted | TaskUpdated | RunFinished
