"""How a task becomes a process: its command line, working folder and environment. Nothing else."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO, Protocol

import attrs

from pit.spec.dag import DagSpec, RunnerKind, TaskSpec

# Variables that belong to pit's own environment and would mislead a task's `uv run`.
_PIT_ONLY_ENV = ("VIRTUAL_ENV",)


@attrs.frozen(kw_only=True)
class ProcessLaunch:
    argv: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]

    def describe(self) -> str:
        return shlex.join(self.argv)


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

    def describe(self) -> str: ...

    async def execute(self, log: BinaryIO) -> Outcome: ...


@attrs.frozen(kw_only=True)
class SqlStubLaunch:
    """A `.sql` task without a database: log the file and succeed (the seed's stub mode)."""

    script: Path
    connection: str | None

    def describe(self) -> str:
        return f"sql stub {self.script.name}"

    async def execute(self, log: BinaryIO) -> Outcome:
        target = f"connection '{self.connection}'" if self.connection else "no connection"
        try:
            text = self.script.read_bytes()
        except OSError as exc:
            return Outcome(exit_code=None, error=f"cannot read {self.script}: {exc.strerror}")
        log.write(
            f"pit: STUB MODE: not executing {self.script.name} ({target}); pass --secrets "
            "to run SQL against the database. The file:\n".encode()
        )
        log.write(text if text.endswith(b"\n") else text + b"\n")
        return Outcome(exit_code=None, error=None)


Launch = ProcessLaunch | InProcessLaunch


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


def run_env(base_env: Mapping[str, str], run_id: str, dag: str, data_dir: Path) -> dict[str, str]:
    """Pit's environment `base_env` as every task of a run inherits it."""
    env = {k: v for k, v in base_env.items() if k not in _PIT_ONLY_ENV}
    env.update(PIT_RUN_ID=run_id, PIT_DAG_NAME=dag, PIT_DATA_DIR=str(data_dir))
    return env


def build_launch(place: RunPlace, task: TaskSpec, attempt: int) -> Launch:
    """The launch of one attempt of `task`."""
    script = place.snapshot_dir / task.script
    kind = task.runner.kind
    if kind is RunnerKind.SQL:
        return SqlStubLaunch(
            script=script, connection=place.dag.sql.connection if place.dag.sql else None
        )
    env = {**place.env, "PIT_TASK_NAME": task.name, "PIT_ATTEMPT": str(attempt)}
    cwd = place.snapshot_dir
    if kind is RunnerKind.PYTHON:
        argv: tuple[str, ...] = ("uv", "run", "--project", str(place.source_dir), str(script))
        # The project's src/ (its shared package) is importable without building the project.
        src = str(place.snapshot_dir / "src")
        env["PYTHONPATH"] = (
            f"{src}{os.pathsep}{env['PYTHONPATH']}" if env.get("PYTHONPATH") else src
        )
    elif kind is RunnerKind.BASH:
        argv = ("bash", str(script))
    elif kind is RunnerKind.CUSTOM:
        argv = (*task.runner.prefix, str(script))
    else:
        argv, cwd = _dbt_argv(place, task)
    return ProcessLaunch(argv=argv, cwd=cwd, env=env)


def _dbt_argv(place: RunPlace, task: TaskSpec) -> tuple[tuple[str, ...], Path]:
    dbt = place.dag.dbt
    assert dbt is not None, "validation requires [dag.dbt] for dbt tasks"
    project = place.snapshot_dir / (dbt.project_dir or ".")
    deps = [arg for dep in (dbt.adapter, *dbt.extra_deps) for arg in ("--with", dep)]
    argv = (
        "uvx",
        "--from",
        f"dbt-core=={dbt.version}",
        *deps,
        "dbt",
        *shlex.split(task.script),
        "--project-dir",
        str(project),
        "--log-format",
        "json",
    )
    return argv, project
