"""Scale-out on real Dask clusters: pit's tasks on the workers of a `distributed.LocalCluster`
(2 worker processes), and of `dask scheduler` plus `pit worker` run as separate commands.

Every test runs the real `pit` against a workspace whose `[executor]` names the cluster, and
checks what a user relies on: the run's record (with each attempt's worker), its logs (masked),
and that no process of the run is left anywhere once it ended.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Pit, Workspace, pit_executable, wait_until
from tests.daskcluster import LocalDask, SeparateDask
from tests.e2e.quickstart import assert_quickstart_succeeded, copy_examples
from tests.pgcluster import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LEFTOVER_GUARD = 10.0
"""Seconds the processes of an ended run have to be gone (the guard sweeps within one)."""


@pytest.fixture(scope="module")
def local_dask(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The cluster of this module's tests, closed after them (its heartbeats cost CPU)."""
    cluster = LocalDask(tmp_path_factory.mktemp("local-dask"))
    yield cluster.address
    cluster.close()


def executor(address: str, extra: str = "") -> str:
    return f'[executor]\nkind = "dask"\nscheduler = "{address}"\ncallback = "127.0.0.1"\n{extra}'


def processes_of(run_id: str) -> list[int]:
    """Every process whose environment names the run (what each of its tasks inherits)."""
    marker = f"PIT_RUN_ID={run_id}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/environ", "rb") as environ:
                    if marker in environ.read().split(b"\0"):
                        found.append(int(entry.name))
            except OSError:
                continue
    return found


def assert_nothing_left(run: Path) -> None:
    wait_until(
        lambda: not processes_of(run.name),
        timeout=LEFTOVER_GUARD,
        what=f"the processes of {run.name} to be gone",
    )


def test_the_quickstart_passes_unchanged_on_the_cluster(
    local_dask: str, tmp_path: Path, pit: Pit
) -> None:
    copy = copy_examples(tmp_path)
    with (copy / "pit_config.toml").open("a") as config:
        config.write("\n" + executor(local_dask))

    result = pit("-C", str(copy), "run", "quickstart", with_root=False)

    assert result.returncode == 0, result.stdout + result.stderr
    run, tasks = assert_quickstart_succeeded(copy)
    # Processes ran on the workers (each attempt's worker named); SQL stays in pit.
    for name in ("orders", "customers", "enrich", "report", "summarise"):
        assert tasks[name]["worker"].startswith("tcp://127.0.0.1:"), name
    assert [a["worker"][:16] for a in tasks["flaky_api"]["history"]] == ["tcp://127.0.0.1:"] * 2
    for name in ("seed_sales", "extract_sales", "load_summary"):
        assert "worker" not in tasks[name]
    # The SDK through the worker's shim: the secret read, masked before it left the worker,
    # the access audited with the task the token named.
    audit = [json.loads(line) for line in (run / "secret_access.jsonl").read_text().splitlines()]
    assert audit[0]["task"] == "summarise"
    assert audit[0]["found_by"] == "attempt token"
    assert audit[0]["outcome"] == "accessed"
    assert_nothing_left(run)


LINGERING = """\
sleep 300 &
setsid sleep 300 &
echo "started on $(hostname)"
sleep 300
"""


def test_a_timeout_on_a_worker_kills_its_whole_tree(
    local_dask: str, workspace: Workspace, pit: Pit
) -> None:
    workspace.config(executor(local_dask))
    workspace.project(
        "slow",
        '[dag]\nname = "slow"\n\n[[tasks]]\nname = "linger"\nscript = "tasks/linger.sh"\n'
        'timeout = "2s"\n',
        {"tasks/linger.sh": LINGERING},
    )

    result = pit("run", "slow")

    assert result.returncode == 1, result.stdout + result.stderr
    run = workspace.only_run("slow")
    task = workspace.task(run, "linger")
    assert task["state"] == "failed"
    assert task["error"].startswith("timed out after 2")
    assert "started on" in (run / "logs" / "linger.log").read_text()  # streamed back
    assert_nothing_left(run)


def test_a_cancelled_run_leaves_nothing_on_the_worker(
    local_dask: str, workspace: Workspace, pit: Pit
) -> None:
    workspace.config(executor(local_dask))
    workspace.shell_project("cancel", {"linger": LINGERING})

    running = pit.start("run", "cancel")
    wait_until(
        lambda: (
            bool(workspace.run_dirs("cancel"))
            and "started on" in _log(workspace.run_dirs("cancel")[0], "linger")
        ),
        what="the task to run on a worker",
    )
    os.kill(running.pid, signal.SIGINT)

    assert running.wait() != 0
    run = workspace.only_run("cancel")
    assert workspace.manifest(run)["state"] in {"cancelled", "failed"}
    assert workspace.task(run, "linger")["state"] == "failed"
    assert_nothing_left(run)


def _log(run: Path, task: str) -> str:
    path = run / "logs" / f"{task}.log"
    return path.read_text() if path.is_file() else ""


def test_a_worker_killed_with_9_leaves_nothing_and_the_attempt_is_retried(
    tmp_path: Path, workspace: Workspace, pit: Pit
) -> None:
    cluster = SeparateDask(tmp_path, pit_executable())
    try:
        workspace.config(executor(cluster.address))
        workspace.project(
            "doomed",
            '[dag]\nname = "doomed"\n\n[[tasks]]\nname = "work"\nscript = "tasks/work.sh"\n'
            "retries = 1\n",
            {
                "tasks/work.sh": (
                    'if [ "$PIT_ATTEMPT" = 1 ]; then\n'
                    "  setsid sleep 300 &\n"
                    "  sleep 300 &\n"
                    '  echo "$PPID" > "$PIT_DATA_DIR/worker.pid"\n'
                    "  sleep 300\n"
                    "fi\n"
                    "echo second attempt\n"
                )
            },
        )

        running = pit.start("run", "doomed")
        wait_until(
            lambda: (
                bool(workspace.run_dirs("doomed"))
                and (workspace.run_dirs("doomed")[0] / "data" / "worker.pid").is_file()
            ),
            what="the first attempt to run on the worker",
        )
        run = workspace.run_dirs("doomed")[0]
        worker_pid = int((run / "data" / "worker.pid").read_text())
        os.kill(worker_pid, signal.SIGKILL)

        assert running.wait() == 0, running.stdout() + running.stderr()
        task = workspace.task(run, "work")
        assert task["state"] == "success"
        assert task["attempts"] == 2
        first = task["history"][0]
        assert "the attempt was lost" in first["error"]
        assert "second attempt" in _log(run, "work")
        assert_nothing_left(run)
    finally:
        cluster.close()


def test_an_unreachable_scheduler_fails_the_task_saying_so(workspace: Workspace, pit: Pit) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    workspace.config(executor(address, 'connect_timeout = "1s"\n'))
    workspace.shell_project("nowhere", {"work": "echo never\n"})

    result = pit("run", "nowhere")

    assert result.returncode == 1
    run = workspace.only_run("nowhere")
    error = workspace.task(run, "work")["error"]
    assert error.startswith(f"cannot reach the Dask scheduler at {address}"), error


def test_staged_data_goes_to_the_worker_and_back(
    local_dask: str, workspace: Workspace, pit: Pit
) -> None:
    workspace.config(executor(local_dask, 'data = "staged"\n'))
    workspace.shell_project(
        "staged",
        {
            "make": 'echo "dir $PIT_DATA_DIR"\necho one > "$PIT_DATA_DIR/out.txt"\n',
            "grow": 'cat "$PIT_DATA_DIR/out.txt" > "$PIT_DATA_DIR/both.txt"\necho two >> '
            '"$PIT_DATA_DIR/both.txt"\n',
        },
        depends_on={"grow": ["make"]},
    )

    result = pit("run", "staged")

    assert result.returncode == 0, result.stdout + result.stderr
    run = workspace.only_run("staged")
    assert (run / "data" / "out.txt").read_text() == "one\n"
    assert (run / "data" / "both.txt").read_text() == "one\ntwo\n"
    # The task wrote into a copy on the worker, not into the run's folder.
    assert f"dir {run / 'data'}\n" not in _log(run, "make")


def test_an_attempt_waiting_on_a_lost_scheduler_fails_saying_so(
    tmp_path: Path, workspace: Workspace, pit: Pit
) -> None:
    cluster = SeparateDask(tmp_path, pit_executable())
    try:
        workspace.config(executor(cluster.address, 'connect_timeout = "3s"\n'))
        workspace.project(
            "gpu",
            '[dag]\nname = "gpu"\n\n[[tasks]]\nname = "train"\nscript = "tasks/train.sh"\n'
            "resources = { gpu = 1 }\n",  # no worker has one: it waits on the cluster
            {"tasks/train.sh": "echo never\n"},
        )
        running = pit.start("run", "gpu")
        wait_until(
            lambda: b"Receive client connection" in cluster.logs[0].read_bytes(),
            what="pit to connect to the scheduler",
        )
        time.sleep(1)  # submitted, waiting for a worker with a GPU
        os.killpg(cluster.scheduler.pid, signal.SIGKILL)

        assert running.wait() == 1, running.stdout() + running.stderr()
        run = workspace.only_run("gpu")
        error = workspace.task(run, "train")["error"]
        assert f"the Dask scheduler at {cluster.address} was lost while it waited" in error
    finally:
        cluster.close()


def test_a_worker_shim_answers_only_its_own_attempt(
    local_dask: str, workspace: Workspace, pit: Pit
) -> None:
    """Every attempt of a worker runs as the worker's user: another process of that user (here,
    the test itself) must not read secrets through an attempt's socket."""
    workspace.config('secrets_dir = "secrets.toml"\n' + executor(local_dask))
    workspace.write("secrets.toml", '[global]\napi_token = "tok-0f-the-run"\n')
    waits = 'echo "socket $PIT_SOCKET"\nwhile [ ! -e "$PIT_DATA_DIR/done" ]; do sleep 0.1; done\n'
    workspace.shell_project("shim", {"wait": waits})
    running = pit.start("run", "shim")
    try:
        wait_until(
            lambda: (
                bool(workspace.run_dirs("shim"))
                and "socket " in _log(workspace.run_dirs("shim")[0], "wait")
            ),
            what="the task to say its socket",
        )
        run = workspace.run_dirs("shim")[0]
        path = _log(run, "wait").split("socket ", 1)[1].split()[0]
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)
            client.sendall(b'{"method": "get_secret", "params": {"key": "api_token"}}')
            client.shutdown(socket.SHUT_WR)
            answer = json.loads(client.makefile("rb").read())
        assert answer["result"] is None
        assert "refused" in answer["error"]
    finally:
        for run in workspace.run_dirs("shim"):
            (run / "data" / "done").touch()
    assert running.wait() == 0, running.stdout() + running.stderr()


def test_a_flood_of_output_arrives_whole_in_order_and_masked(
    local_dask: str, workspace: Workspace, pit: Pit
) -> None:
    """Megabytes through the worker's pipe, its connection to pit and the log, with the secret
    it read cut out however the chunks fell."""
    workspace.config('secrets_dir = "secrets.toml"\n' + executor(local_dask))
    workspace.write("secrets.toml", '[global]\napi_token = "tok-0f-the-flood"\n')
    workspace.project(
        "flood",
        '[dag]\nname = "flood"\n\n[[tasks]]\nname = "talk"\nscript = "tasks/talk.py"\n'
        'runner = "$ python3"\n',
        {
            "tasks/talk.py": (
                "import sys\n"
                "from pit_sdk import get_secret\n"
                "token = get_secret('api_token')\n"
                "for n in range(60000):\n"
                "    sys.stdout.write(f'line {n:05d} {token} ' + 'x' * 40 + '\\n')\n"
            )
        },
    )

    result = pit("run", "flood")

    assert result.returncode == 0, result.stdout + result.stderr
    run = workspace.only_run("flood")
    lines = [line for line in _log(run, "talk").splitlines() if line.startswith("line ")]
    assert lines == [f"line {n:05d} *** " + "x" * 40 for n in range(60000)]
    assert_nothing_left(run)
