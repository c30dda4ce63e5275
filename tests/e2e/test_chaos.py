"""Chaos: every way a run can end, with tasks that try to outlive it.

Each scenario runs a DAG whose task starts a background child (`&`), a `setsid` child, a
double-forked daemon and a `setsid` child that ignores SIGTERM, all recording their pids; then
ends the run one way (the task exits 0, its timeout, the DAG's timeout, Ctrl-C, SIGTERM, kill -9
of `pit run`, of `pit serve`, of its executor, of both) and checks:

- no process of the task is alive within 5 s;
- run.json is final and says what happened.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Pit, Workspace, wait_until
from tests.e2e.test_serve import serve, webhook_dag

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SURVIVOR_LIMIT = 5.0
"""Seconds after the end of a run (or pit's death) by which every task process must be gone."""

FINAL = ("success", "failed", "cancelled")


def spawner(pids: Path, then: str) -> str:
    """A task that leaves every kind of child behind, then does `then`."""
    return f"""\
        echo "$PIT_SOCKET" > {pids}.socket
        sleep 300 &
        echo $! >> {pids}
        setsid sleep 300 &
        echo $! >> {pids}
        ( setsid bash -c 'sleep 300 & echo $! >> {pids}' & )
        setsid bash -c 'trap "" TERM; echo $$ >> {pids}; while :; do sleep 1; done' &
        echo $$ >> {pids}
        while [ "$(wc -l < {pids})" -lt 5 ]; do sleep 0.01; done
        {then}
        """


def state_of(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


class Pids:
    def __init__(self, path: Path) -> None:
        self.path = path

    def all(self) -> list[int]:
        if not self.path.is_file():
            return []
        return [int(line) for line in self.path.read_text().split()]

    def written(self) -> bool:
        return len(self.all()) >= 5

    def living(self) -> list[int]:
        return [pid for pid in self.all() if state_of(pid) not in (None, "Z", "X")]

    def assert_none_survive(self) -> None:
        assert len(self.all()) == 5, "the task did not record its processes"
        wait_until(
            lambda: not self.living(), timeout=SURVIVOR_LIMIT, what="every task process to end"
        )

    def socket_folder(self) -> Path:
        """The private folder of the run's SDK socket (the task wrote where its socket is)."""
        return Path(self.path.with_suffix(".pids.socket").read_text().strip()).parent

    def kill_survivors(self) -> None:
        for pid in self.living():
            with contextlib.suppress(OSError):
                if (
                    b"sleep" in Path(f"/proc/{pid}/cmdline").read_bytes()
                    or b"bash" in Path(f"/proc/{pid}/cmdline").read_bytes()
                ):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def pids(tmp_path: Path) -> Iterator[Pids]:
    found = Pids(tmp_path / "chaos.pids")
    yield found
    found.kill_survivors()


def chaos_dag(workspace: Workspace, pids: Pids, then: str, dag_keys: str = "") -> None:
    workspace.shell_project(
        "chaos",
        {"spawner": spawner(pids.path, then), "after": "true\n"},
        depends_on={"after": ["spawner"]},
        dag_keys=dag_keys,
    )


def run_state(workspace: Workspace) -> dict[str, object]:
    manifest = workspace.manifest(workspace.only_run("chaos"))
    return {
        "state": manifest["state"],
        "spawner": workspace.task(workspace.only_run("chaos"), "spawner")["state"],
        "error": manifest["error"],
    }


# --- pit run ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("then", "dag_keys", "state", "spawner_state"),
    [
        ("exit 0", "", "success", "success"),
        ("sleep 300", "", "failed", "failed"),  # the task's timeout, set below
        ("sleep 300", 'timeout = "1s"', "failed", "failed"),  # the DAG's timeout
    ],
    ids=["exit-0-with-escapees", "task-timeout", "dag-timeout"],
)
def test_pit_run_leaves_nothing_behind(
    workspace: Workspace,
    pit: Pit,
    pids: Pids,
    then: str,
    dag_keys: str,
    state: str,
    spawner_state: str,
) -> None:
    chaos_dag(workspace, pids, then, dag_keys)
    if then == "sleep 300" and not dag_keys:
        toml = workspace.root / "projects/chaos/pit.toml"
        toml.write_text(
            toml.read_text().replace(
                'script = "tasks/spawner.sh"', 'script = "tasks/spawner.sh"\ntimeout = "1s"'
            )
        )

    result = pit("run", "chaos", timeout=60)

    assert run_state(workspace)["state"] == state, result.stdout + result.stderr
    assert run_state(workspace)["spawner"] == spawner_state
    pids.assert_none_survive()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stopped_pit_run_leaves_nothing_behind(
    workspace: Workspace, pit: Pit, pids: Pids, signum: int
) -> None:
    chaos_dag(workspace, pids, "sleep 300")
    run = pit.start("run", "chaos")
    wait_until(pids.written, what="the task to start its children")

    os.kill(run.pid, signum)

    assert run.wait(timeout=30) == 130, run.stdout() + run.stderr()
    assert run_state(workspace)["state"] == "cancelled"
    pids.assert_none_survive()


def test_kill_9_of_pit_run_leaves_nothing_behind_and_run_json_says_why(
    workspace: Workspace, pit: Pit, pids: Pids
) -> None:
    chaos_dag(workspace, pids, "sleep 300")
    run = pit.start("run", "chaos")
    wait_until(pids.written, what="the task to start its children")
    wait_until(lambda: workspace.running_task("chaos", "spawner"), what="run.json to say so")

    os.kill(run.pid, signal.SIGKILL)
    run.wait()

    pids.assert_none_survive()
    wait_until(
        lambda: run_state(workspace)["state"] in FINAL,
        timeout=SURVIVOR_LIMIT,
        what="run.json to be settled",
    )
    settled = run_state(workspace)
    assert settled["state"] == "failed"
    assert settled["spawner"] == "failed"
    assert f"pit (pid {run.pid}) died" in str(settled["error"])
    wait_until(
        lambda: not pids.socket_folder().exists(), timeout=SURVIVOR_LIMIT, what="its socket folder"
    )
    assert workspace.task(workspace.only_run("chaos"), "after")["state"] == "skipped"


# --- pit serve --------------------------------------------------------------------------------


def executor_of(serve_pid: int) -> int:
    """The executor process pit serve started (its one child running pit.cli.executor)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text().rpartition(")")[2].split()
            if (
                int(stat[1]) == serve_pid
                and b"pit.cli.executor" in (entry / "cmdline").read_bytes()
            ):
                return int(entry.name)
    raise AssertionError("pit serve has no executor")


@pytest.mark.parametrize("victims", ["serve", "executor", "both"])
def test_kill_9_under_pit_serve_leaves_nothing_behind(
    workspace: Workspace, pit: Pit, pids: Pids, victims: str
) -> None:
    webhook_dag(workspace, "chaos", spawner(pids.path, "sleep 300"))
    with serve(pit, workspace) as server:
        accepted = server.post("chaos")
        assert accepted.status_code == 202, accepted.text
        run_dir = workspace.root / "runs" / accepted.json()["run_id"]
        wait_until(pids.written, what="the task to start its children")
        executor = executor_of(server.process.pid)

        if victims in ("serve", "both"):
            os.kill(server.process.pid, signal.SIGKILL)
        if victims in ("executor", "both"):
            os.kill(executor, signal.SIGKILL)

        pids.assert_none_survive()
        wait_until(
            lambda: (
                (run_dir / "run.json").is_file() and workspace.manifest(run_dir)["state"] in FINAL
            ),
            timeout=SURVIVOR_LIMIT,
            what="run.json to be settled",
        )
        assert workspace.manifest(run_dir)["state"] in ("failed", "cancelled")
        wait_until(
            lambda: not pids.socket_folder().exists(),
            timeout=SURVIVOR_LIMIT,
            what="the executor's socket folder to go",
        )
        if victims == "executor":  # pit serve lives on and serves the next run
            server.signal(signal.SIGTERM)
            assert server.exit_code() == 0, server.output()
