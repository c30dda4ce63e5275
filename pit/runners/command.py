"""How a task becomes a process: its command line, working folder and environment. Nothing else."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO, Protocol

import attrs

from pit.runners.dbt import dbt_command, dbt_env
from pit.spec.dag import DagSpec, RunnerKind, TaskSpec, TaskType
from pit.spec.params import Params, param_env
from pit.spec.secrets import SecretNotFound, Secrets

# Variables that belong to pit's own environment and would mislead a task's `uv run`.
_PIT_ONLY_ENV = ("VIRTUAL_ENV",)


@attrs.frozen(kw_only=True)
class ProcessLaunch:
    argv: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]


@attrs.frozen(kw_only=True)
class Outcome:
    """How one attempt ended."""

    exit_code: int | None
    error: str | None
    """None on success; otherwise what went wrong, as the user will read it."""

    @property
    def ok(self) -> bool:
        return self.error is None


class InProcessLaunch(Protocol):
    """Work a task does inside pit (SQL against a database) instead of in a process.

    The task actor bounds it with the task's timeout and stops it by cancellation, so `execute`
    must give up promptly when cancelled (and release what it holds).
    """

    async def execute(self, log: BinaryIO) -> Outcome: ...


@attrs.frozen(kw_only=True)
class SqlStubLaunch:
    """A SQL task without a secrets file: log what it would do and succeed (the seed's stub
    mode)."""

    task: TaskSpec
    script: Path | None
    """None for a load task, which has no script."""
    connection: str | None

    async def execute(self, log: BinaryIO) -> Outcome:
        target = f"connection '{self.connection}'" if self.connection else "no connection"
        what = f"{self.task.type} task {self.task.name}"
        if self.task.type is TaskType.LOAD:
            what += (
                f" (data/{self.task.sql.source} into {self.task.sql.table}, {self.task.sql.mode})"
            )
        elif self.task.type is TaskType.SAVE:
            what += f" (its query into data/{self.task.sql.output})"
        log.write(
            f"pit: STUB MODE: not executing {what} against {target}: pass --secrets "
            "(or set secrets_dir) to run SQL.\n".encode()
        )
        if self.script is not None:
            try:
                text = self.script.read_bytes()
            except OSError as exc:
                return Outcome(exit_code=None, error=f"cannot read {self.script}: {exc.strerror}")
            log.write(text if text.endswith(b"\n") else text + b"\n")
        return Outcome(exit_code=None, error=None)


@attrs.frozen(kw_only=True)
class SqlLaunch:
    """A SQL task to run in pit's process against its database (see pit.actors.sql)."""

    task: TaskSpec
    script: Path | None
    """None for a load task, which has no script."""
    connection_name: str | None
    connection: str | Mapping[str, str] | None = attrs.field(repr=False)
    """The secret's value: a connection string or a structured secret; None if it is missing
    (the task then fails saying so)."""
    data_dir: Path
    workspace: Path
    """Relative sqlite/duckdb paths resolve against it."""
    params: Params = attrs.field(factory=dict)
    """The run's params: its script binds those it names as `:name`."""


Launch = ProcessLaunch | InProcessLaunch | SqlLaunch


@attrs.frozen(kw_only=True)
class RunPlace:
    """Where a run lives: what every task of it is told through its environment."""

    run_id: str
    dag: DagSpec
    source_dir: Path
    """The project folder in the workspace (where its `.venv` lives)."""
    snapshot_dir: Path
    """The run's frozen copy of the project; tasks run from here."""
    data_dir: Path
    env: Mapping[str, str]
    """What every task of the run inherits: pit's environment and the run's PIT_* variables
    (see `run_env`), built once per run rather than once per task."""
    workspace: Path
    secrets: Secrets | None = attrs.field(default=None, repr=False)
    """None without a secrets file: SQL tasks then run in stub mode."""
    dbt_profiles: Path | None = None
    """The folder of the profiles.yml written for the run's dbt tasks (`pit.runners.dbt`)."""
    params: Params = attrs.field(factory=dict)


def run_env(
    base_env: Mapping[str, str],
    run_id: str,
    dag: str,
    data_dir: Path,
    socket: Path | None,
    scheduled_time: dt.datetime | None = None,
    params: Params | None = None,
) -> dict[str, str]:
    """Pit's environment `base_env` as every task of a run inherits it. Nothing from the
    secrets file enters it: tasks ask the broker at `socket` (PIT_SOCKET)."""
    env = {k: v for k, v in base_env.items() if k not in _PIT_ONLY_ENV}
    env.update(PIT_RUN_ID=run_id, PIT_DAG_NAME=dag, PIT_DATA_DIR=str(data_dir))
    if socket is not None:
        env["PIT_SOCKET"] = str(socket)
    if scheduled_time is not None:
        env["PIT_SCHEDULED_TIME"] = scheduled_time.isoformat()
    env.update(param_env(params or {}))
    if SDK_PATH is not None:  # pit_sdk is importable in every Python a task starts
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SDK_PATH), env.get("PYTHONPATH")]))
    return env


def build_launch(place: RunPlace, task: TaskSpec, attempt: int) -> Launch:
    """The launch of one attempt of `task`."""
    script = place.snapshot_dir / task.script
    kind = task.runner.kind
    if kind is RunnerKind.SQL:
        return _sql_launch(place, task)
    env = {**place.env, "PIT_TASK_NAME": task.name, "PIT_ATTEMPT": str(attempt)}
    env["PIT_WORKSPACE"] = str(place.workspace)  # where pit_sdk resolves sqlite:///relative.db
    cwd = place.snapshot_dir
    if kind is RunnerKind.PYTHON:
        argv: tuple[str, ...] = ("uv", "run", "--project", str(place.source_dir), str(script))
        # The project's src/ (its shared package) is importable without building the project.
        src = str(place.snapshot_dir / "src")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    elif kind is RunnerKind.BASH:
        argv = ("bash", str(script))
    elif kind is RunnerKind.CUSTOM:
        argv = (*task.runner.prefix, str(script))
    else:
        argv, cwd = _dbt_argv(place, task)
        env.update(dbt_env(place.dbt_profiles))
    return ProcessLaunch(argv=argv, cwd=cwd, env=env)


def _sql_launch(place: RunPlace, task: TaskSpec) -> SqlStubLaunch | SqlLaunch:
    name = task.sql.connection or (place.dag.sql.connection if place.dag.sql else None)
    script = place.snapshot_dir / task.script if task.script else None
    if place.secrets is None:
        return SqlStubLaunch(task=task, script=script, connection=name)
    value = None
    if name is not None:
        with contextlib.suppress(SecretNotFound):
            value = place.secrets.find(place.dag.name, name)
    return SqlLaunch(
        task=task,
        script=script,
        connection_name=name,
        connection=value,
        data_dir=place.data_dir,
        workspace=place.workspace,
        params=place.params,
    )


def _find_sdk() -> Path | None:
    """The folder holding the `pit_sdk` package: beside pit in a checkout, or inside an
    installed pit (`pit/_sdk`)."""
    package = Path(__file__).resolve().parents[1]
    for folder in (package.parent / "sdk" / "python", package / "_sdk"):
        if (folder / "pit_sdk" / "__init__.py").is_file():
            return folder
    return None


SDK_PATH = _find_sdk()


def _dbt_argv(place: RunPlace, task: TaskSpec) -> tuple[tuple[str, ...], Path]:
    dbt = place.dag.dbt
    assert dbt is not None, "validation requires [dag.dbt] for dbt tasks"
    project = place.snapshot_dir / (dbt.project_dir or ".")
    argv = (
        *dbt_command(dbt),
        *shlex.split(task.script),
        "--project-dir",
        str(project),
        "--profile",
        dbt.profile or place.dag.name,
        "--target",
        dbt.target,
        "--log-format",
        "json",
    )
    return argv, project
