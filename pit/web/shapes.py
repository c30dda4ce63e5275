"""The JSON the API answers with: the original Pit's field names, times in RFC 3339 UTC."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pit.messages.run import RunRecord, TaskRecord


def run_json(record: RunRecord) -> dict[str, Any]:
    """A run as the original Pit's API shows one."""
    return {
        "id": record.run_id,
        "dag_name": record.dag,
        "status": record.state.value,
        "started_at": rfc3339(record.started_at) or "",
        "ended_at": rfc3339(record.ended_at),
        "trigger": record.trigger,
        "error": record.error,
        "scheduled_time": rfc3339(record.scheduled_time),
    }


def run_with_tasks(record: RunRecord) -> dict[str, Any]:
    return {**run_json(record), "tasks": [task_json(task) for task in record.tasks]}


def task_json(task: TaskRecord) -> dict[str, Any]:
    return {
        "name": task.name,
        "status": task.state.value,
        "started_at": rfc3339(task.started_at),
        "ended_at": rfc3339(task.ended_at),
        "attempts": task.attempts,
        "exit_code": task.exit_code,
        "error": task.error,
    }


def log_json(
    *, run_id: str, dag: str, task: str, attempt: int, message: str, at: dt.datetime | None
) -> dict[str, Any]:
    """One log line as the original Pit's log stream sends it."""
    return {
        "timestamp": rfc3339(at),
        "run_id": run_id,
        "dag_name": dag,
        "task_name": task,
        "level": level_of(message),
        "message": message,
        "attempt": attempt,
        "duration": "",
    }


def level_of(message: str) -> str:
    """The original Pit's guess from the text: error, warn or info."""
    upper = message.upper()
    if upper.startswith("ERROR") or "TRACEBACK" in upper:
        return "error"
    if upper.startswith(("WARNING", "WARN:")):
        return "warn"
    return "info"


def rfc3339(at: dt.datetime | None) -> str | None:
    if at is None:
        return None
    return at.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
