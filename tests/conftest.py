"""Shared fixtures for tests that drive the real `pit` command.

`workspace` builds a pit workspace (projects/, pit_config.toml) in the test's tmp_path and reads
back the runs it gets; `pit` runs the installed `pit` console script against it, in the foreground
(`pit("run", "etl")`) or in the background (`pit.start("run", "etl")`).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.pgcluster import POSTGRES_BIN_GLOB, PostgresCluster, postgres_bin_dir

HANG_GUARD = 60.0
"""Seconds any single pit command may take before a test gives up on it (a hang, not a slow run)."""


def pit_executable() -> Path:
    """The `pit` console script of the venv running the tests (`uv run pytest`)."""
    script = Path(sys.executable).parent / "pit"
    if script.is_file():
        return script
    found = shutil.which("pit")
    assert found is not None, "no `pit` console script: run the tests with `uv run pytest`"
    return Path(found)


def wait_until(condition: Callable[[], bool], *, timeout: float = HANG_GUARD, what: str) -> None:
    """Poll `condition` until it holds; fail the test (naming `what`) if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


class Workspace:
    """A pit workspace under construction: write projects and config, read back runs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "projects").mkdir(parents=True)

    def write(self, relative: str, text: str) -> Path:
        """Write a file (dedented) relative to the workspace root."""
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    def config(self, text: str) -> Path:
        return self.write("pit_config.toml", text)

    def project(self, name: str, pit_toml: str, files: Mapping[str, str] | None = None) -> Path:
        """projects/<name>/ with the given pit.toml and further files (e.g. tasks/a.sh)."""
        self.write(f"projects/{name}/pit.toml", pit_toml)
        for relative, text in (files or {}).items():
            self.write(f"projects/{name}/{relative}", text)
        return self.root / "projects" / name

    def shell_project(
        self,
        name: str,
        tasks: Mapping[str, str],
        *,
        depends_on: Mapping[str, list[str]] | None = None,
        dag_keys: str = "",
        extra: str = "",
    ) -> Path:
        """A DAG of bash tasks: `tasks` maps each task name to its script (tasks/<name>.sh).

        `dag_keys` are further lines for [dag]; `extra` is appended (e.g. [[outputs]] tables).
        """
        lines = ["[dag]", f'name = "{name}"', textwrap.dedent(dag_keys).strip(), ""]
        for task in tasks:
            lines += ["[[tasks]]", f'name = "{task}"', f'script = "tasks/{task}.sh"']
            if deps := (depends_on or {}).get(task):
                lines.append(f"depends_on = {json.dumps(deps)}")
            lines.append("")
        lines.append(textwrap.dedent(extra))
        return self.project(
            name, "\n".join(lines), {f"tasks/{task}.sh": text for task, text in tasks.items()}
        )

    def run_dirs(self, dag: str, runs_dir: str = "runs") -> list[Path]:
        """The DAG's run folders, oldest first (run ids sort by start time)."""
        runs = self.root / runs_dir
        if not runs.is_dir():
            return []
        return sorted(p for p in runs.iterdir() if p.name.endswith(f"_{dag}"))

    def only_run(self, dag: str, runs_dir: str = "runs") -> Path:
        runs = self.run_dirs(dag, runs_dir)
        assert len(runs) == 1, f"expected one run of {dag}, found {[r.name for r in runs]}"
        return runs[0]

    def running_task(self, dag: str, task: str) -> bool:
        """Whether the DAG's latest run has started and says `task` is running."""
        runs = self.run_dirs(dag)
        if not runs or not (runs[-1] / "run.json").is_file():
            return False
        return self.task(runs[-1], task)["state"] == "running"

    @staticmethod
    def manifest(run_dir: Path) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        return loaded

    @classmethod
    def task_states(cls, run_dir: Path) -> dict[str, str]:
        return {t["name"]: t["state"] for t in cls.manifest(run_dir)["tasks"]}

    @classmethod
    def task(cls, run_dir: Path, name: str) -> dict[str, Any]:
        (task,) = (t for t in cls.manifest(run_dir)["tasks"] if t["name"] == name)
        return task


class Background:
    """A pit process started in its own session, its output going to files (no pipe to fill)."""

    def __init__(self, process: subprocess.Popen[bytes], stdout: Path, stderr: Path) -> None:
        self.process = process
        self._stdout = stdout
        self._stderr = stderr

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait(self, timeout: float = HANG_GUARD) -> int:
        return self.process.wait(timeout=timeout)

    def stdout(self) -> str:
        return self._stdout.read_text(encoding="utf-8")

    def stderr(self) -> str:
        return self._stderr.read_text(encoding="utf-8")


class Pit:
    """Runs the real `pit` command with `-C <workspace>` (unless told `root=None`)."""

    def __init__(self, root: Path, scratch: Path) -> None:
        self.root = root
        self.executable = pit_executable()
        self._scratch = scratch
        self._started: list[Background] = []

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "PIT_PROJECT_DIR"}
        env.update(extra or {})
        return env

    def argv(self, args: tuple[str, ...], *, with_root: bool = True) -> list[str]:
        flags = ["-C", str(self.root)] if with_root else []
        return [str(self.executable), *flags, *args]

    def __call__(
        self,
        *args: str,
        with_root: bool = True,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = HANG_GUARD,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `pit [-C workspace] args...` to its end (`stdin` its input; none when None);
        return its exit code and output."""
        return subprocess.run(
            self.argv(args, with_root=with_root),
            cwd=cwd or self.root,
            env=self.env(env),
            **({"stdin": subprocess.DEVNULL} if stdin is None else {"input": stdin}),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, *args: str, env: Mapping[str, str] | None = None) -> Background:
        """Start `pit args...` in the background, in a session of its own so that signals sent
        to it reach pit only (pit must pass them on to its tasks itself)."""
        n = len(self._started)
        stdout, stderr = self._scratch / f"pit-{n}.out", self._scratch / f"pit-{n}.err"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(
                self.argv(args),
                cwd=self.root,
                env=self.env(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        background = Background(process, stdout, stderr)
        self._started.append(background)
        return background

    def kill_leftovers(self) -> None:
        """SIGKILL background pits a failed test left running (never anything else)."""
        for background in self._started:
            if background.process.poll() is None:
                background.process.kill()
                background.process.wait()


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[..., None]:
    return wait_until


def new_workspace(base: Path) -> tuple[Workspace, Pit]:
    """A workspace in `base`/ws and a `pit` that runs against it (scratch files in `base`)."""
    scratch = base / "pit-output"
    scratch.mkdir()
    workspace = Workspace(base / "ws")
    return workspace, Pit(workspace.root, scratch)


@pytest.fixture(scope="session")
def make_workspace() -> Callable[[Path], tuple[Workspace, Pit]]:
    """For fixtures wider than one test (a workspace several tests read but none changes)."""
    return new_workspace


@pytest.fixture
def workspace_and_pit(tmp_path: Path) -> Iterator[tuple[Workspace, Pit]]:
    workspace, runner = new_workspace(tmp_path)
    yield workspace, runner
    runner.kill_leftovers()


@pytest.fixture
def workspace(workspace_and_pit: tuple[Workspace, Pit]) -> Workspace:
    return workspace_and_pit[0]


@pytest.fixture
def pit(workspace_and_pit: tuple[Workspace, Pit]) -> Pit:
    return workspace_and_pit[1]


# --- PostgreSQL: a private throwaway cluster (tests/pgcluster.py) ----------------------------


def _no_postgres(reason: str) -> NoReturn:
    """Skip, or fail where PostgreSQL is required (CI sets PIT_REQUIRE_POSTGRES=1)."""
    if os.environ.get("PIT_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason}, and PIT_REQUIRE_POSTGRES=1 requires PostgreSQL tests to run")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        _no_postgres(
            f"no PostgreSQL server binaries (looked in {POSTGRES_BIN_GLOB} and for initdb on "
            "PATH; install the `postgresql` package)"
        )
    cluster = PostgresCluster(bin_dir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """`postgresql://postgres@127.0.0.1:<port>/pit_test` of the session's own cluster."""
    postgres_cluster.admin("CREATE DATABASE pit_test")
    return postgres_cluster.url("pit_test")


_database_numbers = itertools.count()


@pytest.fixture
def fresh_postgres_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """The URL of an empty database of this test's own, dropped after it."""
    name = f"pit_test_{next(_database_numbers)}"
    postgres_cluster.admin(f"CREATE DATABASE {name}")
    yield postgres_cluster.url(name)
    postgres_cluster.admin(f"DROP DATABASE {name} WITH (FORCE)")
