"""The JSON the API answers with: the original Pit's field names, times in RFC 3339 UTC."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, TypedDict

from pit.messages.run import RunRecord, TaskRecord


class ErrorJson(TypedDict):
    error: str


class HealthJson(TypedDict):
    status: str


class RunJson(TypedDict):
    id: str
    dag_name: str
    status: str
    started_at: str
    """RFC 3339 UTC; "" before the run started (as the original Pit wrote it)."""
    ended_at: str | None
    trigger: str
    error: str | None
    scheduled_time: str | None
    code_version: str | None
    """A digest of the code the run ran (its snapshot)."""
    rerun_of: str | None


class AttemptJson(TypedDict):
    number: int
    started_at: str | None
    ended_at: str | None
    exit_code: int | None
    error: str | None


class TaskJson(TypedDict):
    name: str
    status: str
    started_at: str | None
    ended_at: str | None
    attempts: int
    exit_code: int | None
    error: str | None
    reused_from: str | None
    """A re-run's task taken from the run it re-runs (that run's id): not run again."""
    history: list[AttemptJson]
    """Each attempt of a task tried more than once; empty for one tried once."""


class RunDetailJson(RunJson):
    tasks: list[TaskJson]


class RunsPageJson(TypedDict):
    runs: list[RunJson]
    next: str | None
    """The `before` of the next page; None on the last."""


class ParamJson(TypedDict):
    """One of the DAG's `[dag.params]`: what a run may be given."""

    name: str
    type: str
    default: str | int | float | bool | None
    """As written (a date's may be a template such as `{{ scheduled_date }}`); None: required."""
    choices: list[str]
    description: str


class DagJson(TypedDict):
    name: str
    schedule: str
    schedule_text: str
    """The schedule in words (`at 06:00 every day`); "" without one."""
    next_run: str | None
    """When the schedule fires next, RFC 3339 UTC; None without one."""
    timezone: str | None
    task_count: int
    triggers: list[str]
    paused: bool
    params: list[ParamJson]


class DagSummaryJson(DagJson):
    latest_run: RunJson | None
    recent_runs: list[RunJson]
    """The last runs, newest first: as many as `?recent=N` asks (default 1)."""


class DagsJson(TypedDict):
    dags: list[DagSummaryJson]


class DagTaskJson(TypedDict):
    name: str
    script: str
    depends_on: list[str]
    type: str
    timeout_seconds: float | None
    retries: int


class DagDetailJson(DagJson):
    overlap: str
    timeout: str
    timeout_seconds: float | None
    tasks: list[DagTaskJson]
    recent_runs: list[RunJson]


class OutputJson(TypedDict):
    dag_name: str
    name: str
    type: str
    location: str


class OutputsJson(TypedDict):
    outputs: list[OutputJson]


class RunStartedJson(TypedDict):
    run_id: str
    dag: str


class CancelJson(TypedDict):
    run_id: str
    status: Literal["cancelling", "cancelled"]


class PausedJson(TypedDict):
    dag: str
    paused: bool


RUN_REQUEST = {
    "type": "object",
    "properties": {
        "params": {
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "boolean"]},
        }
    },
    "additionalProperties": False,
}
"""The body of `POST /api/dags/{name}/runs`: none, `{}`, or the run's params (`[dag.params]`:
a value of each one's type, or its text; a date or datetime as ISO 8601 text)."""

RERUN_REQUEST = {
    "type": "object",
    "properties": {
        "from": {"enum": ["failed"]},
        "tasks": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "latest_code": {"type": "boolean"},
    },
    "additionalProperties": False,
}
"""The body of `POST /api/runs/{id}/rerun`: from the failure (the default), or these tasks."""


def run_json(record: RunRecord) -> RunJson:
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
        "code_version": record.code_version,
        "rerun_of": record.rerun_of,
    }


def run_with_tasks(record: RunRecord) -> RunDetailJson:
    return {**run_json(record), "tasks": [task_json(task) for task in record.tasks]}


def task_json(task: TaskRecord) -> TaskJson:
    return {
        "name": task.name,
        "status": task.state.value,
        "started_at": rfc3339(task.started_at),
        "ended_at": rfc3339(task.ended_at),
        "attempts": task.attempts,
        "exit_code": task.exit_code,
        "error": task.error,
        "reused_from": task.reused_from,
        "history": [
            {
                "number": attempt.number,
                "started_at": rfc3339(attempt.started_at),
                "ended_at": rfc3339(attempt.ended_at),
                "exit_code": attempt.exit_code,
                "error": attempt.error,
            }
            for attempt in task.history
        ],
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
