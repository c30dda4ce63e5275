"""A run's commands, its records, and the events its observers (manifest writer, views) receive."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, assert_never

import attrs

from pit.messages.task import TaskEvent
from pit.spec.defaults import (
    ARTIFACTS,
    DEFAULT_DBT_DRIVER,
    DEFAULT_MAX_ACTIVE_TASKS,
    DEFAULT_STOP_GRACE,
)
from pit.spec.params import Params, Value
from pit.spec.retention import Retention
from pit.spec.states import RunState, TaskState
from pit.spec.workspace import ExecutorConfig

if TYPE_CHECKING:  # reading a run record (`pit logs`) need not import the spec parsers
    from pit.spec.dag import DagSpec

# --- records: what a run is, at any moment --------------------------------------------------


@attrs.frozen(kw_only=True)
class Attempt:
    """One attempt of a task that was tried more than once."""

    number: int
    started_at: dt.datetime | None
    ended_at: dt.datetime | None = None
    exit_code: int | None = None
    error: str | None = None
    worker: str | None = None
    """The Dask worker it ran on (`[executor] kind = "dask"`); None: on pit's machine."""

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "exit_code": self.exit_code,
            "error": self.error,
            **({"worker": self.worker} if self.worker else {}),
        }


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
    reused_from: str | None = None
    """A re-run's task that succeeded in the run re-run (its id): not run again."""
    history: tuple[Attempt, ...] = ()
    """Each attempt, once the task has been tried again (the last one open while it runs);
    empty for a task tried once, whose one attempt the fields above describe."""
    pool: str | None = None
    """The pool each of its attempts takes a slot of (`pool` in pit.toml)."""
    hook: str | None = None
    """How its `on_failure` / `on_success` hook went, once it has run."""
    worker: str | None = None
    """The Dask worker its last attempt ran on; None: on pit's machine."""

    _json: dict[str, Any] | None = attrs.field(default=None, init=False, eq=False, repr=False)
    """`to_json`'s, made once: run.json is written many times while most tasks stay as they
    were (a 500-task run's every write made 500 dicts and 1,000 timestamps)."""
    _text: str | None = attrs.field(default=None, init=False, eq=False, repr=False)
    """`json_text`'s, made once, for the same reason."""

    def to_json(self) -> dict[str, Any]:
        if self._json is None:
            object.__setattr__(self, "_json", self._make_json())  # frozen: a cache only
        assert self._json is not None
        return dict(self._json)  # a copy: what a caller changes stays its own

    def json_text(self) -> str:
        """`to_json` as JSON text."""
        if self._text is None:
            object.__setattr__(self, "_text", json.dumps(self.to_json()))
        assert self._text is not None
        return self._text

    def _make_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state.value,
            "attempts": self.attempts,
            "exit_code": self.exit_code,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "error": self.error,
            "reused_from": self.reused_from,
            **(
                {"history": [attempt.to_json() for attempt in self.history]} if self.history else {}
            ),
            **({"pool": self.pool} if self.pool else {}),
            **({"hook": self.hook} if self.hook else {}),
            **({"worker": self.worker} if self.worker else {}),
        }


@attrs.frozen(kw_only=True)
class RunOwner:
    """The process that executes a run: what tells a run still going from one whose pit died
    (a pid alone is reused; with the boot and the process's start time it is not)."""

    host: str
    pid: int
    boot_id: str
    """/proc/sys/kernel/random/boot_id: a reboot ends every run of the machine."""
    started: int
    """The process's start time in clock ticks since boot (/proc/<pid>/stat, field 22)."""

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen(kw_only=True)
class RunRecord:
    run_id: str
    dag: str
    trigger: str
    """What started the run: "manual" for `pit run`; cron, webhook or ftp under `pit serve`."""
    scheduled_time: dt.datetime | None = None
    """For a cron run, the time it was scheduled for."""
    state: RunState = RunState.PENDING
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    error: str | None = None
    tasks: tuple[TaskRecord, ...] = ()
    owner: RunOwner | None = None
    """The process executing the run; None in records written before owners were kept."""
    rerun_of: str | None = None
    """The run this one re-runs (`pit rerun`), whose succeeded tasks it reuses."""
    code_version: str | None = None
    """What code ran: a digest of the run's snapshot (`pit.store.rundir.code_version`), or for a
    git-backed DAG `git:<commit>`."""
    code_commit: str | None = None
    """The git commit of the code: a git-backed DAG's, or that of the work tree a local
    project is in (as checked out; its files may differ, which `code_version` tells)."""
    code_note: str | None = None
    """Why the code is not what the DAG names: a git fetch failed and `offline_ok` ran the
    commit checked out before."""
    params: Mapping[str, Value] = attrs.field(factory=dict)
    """The run's params (`[dag.params]`), as JSON holds them."""

    def json_text(self) -> str:
        """`to_json` as JSON text (the same keys in the same order), made of its tasks' texts:
        those that did not change since the last write are not encoded again."""
        head, tail = self._json_parts()
        tasks = ", ".join(task.json_text() for task in self.tasks)
        return f'{json.dumps(head)[:-1]}, "tasks": [{tasks}], {json.dumps(tail)[1:]}'

    def to_json(self) -> dict[str, Any]:
        head, tail = self._json_parts()
        return {**head, "tasks": [task.to_json() for task in self.tasks], **tail}

    def _json_parts(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The fields before "tasks", and those after it."""
        head = {
            "version": 1,
            "run_id": self.run_id,
            "dag": self.dag,
            "trigger": self.trigger,
            "scheduled_time": _iso(self.scheduled_time),
            "state": self.state.value,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "error": self.error,
        }
        tail = {
            "owner": self.owner.to_json() if self.owner else None,
            "rerun_of": self.rerun_of,
            "code_version": self.code_version,
            "code_commit": self.code_commit,
            "code_note": self.code_note,
            "params": dict(self.params),
        }
        return head, tail


def _iso(at: dt.datetime | None) -> str | None:
    return at.isoformat(timespec="milliseconds") if at else None


# --- commands to a run actor ---------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RunPlan:
    """Everything needed to start a run of a DAG (`pit.actors.plans.plan_run` makes one from a
    project and its workspace)."""

    dag: DagSpec
    source_dir: Path
    """The project folder the snapshot is taken from."""
    runs_dir: Path
    workspace: Path | None = None
    """The workspace root (relative database paths resolve against it); when None, the parent
    of `runs_dir`."""
    trigger: str = "manual"
    scheduled_time: dt.datetime | None = None
    seed_files: tuple[Path, ...] = ()
    """Copied into the run's data/ before its first task starts."""
    only_task: str | None = None
    keep_artifacts: tuple[str, ...] = ARTIFACTS
    max_active: int = DEFAULT_MAX_ACTIVE_TASKS
    grace: float = DEFAULT_STOP_GRACE
    """Seconds between SIGTERM and SIGKILL when a task is stopped."""
    retention: Retention = attrs.field(factory=Retention)
    """How long the DAG's runs are kept: applied to its older runs once this one has ended."""
    rerun_of: str | None = None
    """A re-run: the run it re-runs (from that run's snapshot unless told otherwise)."""
    code_version: str | None = None
    """The code's version when known before the snapshot is taken (a re-run from the snapshot
    of a git-backed run: its commit); None: the snapshot's digest."""
    dbt_driver: str = DEFAULT_DBT_DRIVER
    """The ODBC driver of dbt-sqlserver profiles (`dbt_driver` in pit_config.toml)."""
    git_clone: Path | None = None
    """A git-backed DAG's clone (`repo_cache/<dag>`): fetched and checked out before the run,
    and its snapshot taken from there (with the project's pit.toml). None: `source_dir` alone."""
    reused: Mapping[str, TaskRecord] = attrs.field(factory=dict)
    """A re-run's tasks that succeeded in the run re-run: recorded as such, not run again."""
    params: Params = attrs.field(factory=dict)
    """The run's params, resolved (`pit.spec.params.resolve_params`)."""
    pool_sizes: Mapping[str, int] = attrs.field(factory=dict)
    """`[pools]` of pit_config.toml: the slots of each pool its tasks may name."""
    dashboard_url: str | None = None
    """Where pit serve's dashboard is reached (`dashboard_url`): notifications link to it."""
    executor: ExecutorConfig = attrs.field(factory=ExecutorConfig)
    """`[executor]` of pit_config.toml: where its tasks' processes run."""


@attrs.frozen(kw_only=True)
class CancelRun:
    """Stop the run: running tasks are stopped, tasks not started become skipped."""

    kill: bool = False
    """Kill running tasks at once instead of the SIGTERM-grace-SIGKILL escalation."""
    by: str | None = None
    """Who cancelled the run, named in its error ("cancelled by ..."); None: a signal."""


@attrs.frozen(kw_only=True)
class RunDeadlinePassed:
    """The DAG timeout ran out (sent by the run's own timer)."""


@attrs.frozen(kw_only=True)
class StopRun:
    """The run cannot go on (its run.json cannot be written: a full disk, its folder removed):
    running tasks are stopped in order, pending ones skipped, and the run fails with `reason`."""

    reason: str


RunInbox = CancelRun | RunDeadlinePassed | StopRun | TaskEvent

# --- events to observers -------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RunStarted:
    record: RunRecord


@attrs.frozen(kw_only=True)
class TaskUpdated:
    """One task changed; observers that show the whole run keep the other records themselves."""

    run_id: str
    """So that one observer can follow many runs (the supervisor's log)."""
    record: TaskRecord


@attrs.frozen(kw_only=True)
class RunEnded:
    """A run is over; `record` is its final record. Observers get it as the last event, and a
    requester (a trigger, the supervisor) as the answer to how its run ended."""

    record: RunRecord

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def dag(self) -> str:
        return self.record.dag

    @property
    def state(self) -> RunState:
        return self.record.state


RunEvent = RunStarted | TaskUpdated | RunEnded


class RunTracker:
    """The whole run as an observer rebuilds it from the events it receives."""

    def __init__(self) -> None:
        self._run: RunRecord | None = None
        self._tasks: dict[str, TaskRecord] = {}

    def apply(self, event: RunEvent) -> None:
        match event:
            case RunStarted(record=record) | RunEnded(record=record):
                self._run = record
                self._tasks = {task.name: task for task in record.tasks}
            case TaskUpdated(record=task):
                self._tasks[task.name] = task
            case _:
                assert_never(event)

    @property
    def started(self) -> bool:
        return self._run is not None

    @property
    def record(self) -> RunRecord:
        assert self._run is not None, "no RunStarted yet"
        return attrs.evolve(self._run, tasks=tuple(self._tasks.values()))
