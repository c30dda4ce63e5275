"""`pit serve` as a real process: webhooks over real HTTP, SIGTERM with a run in flight, a
second SIGTERM, SIGHUP.

Each test starts `pit --secrets <file> serve --port <free port>` on a workspace of webhook DAGs,
waits until the listener answers, and talks to it with httpx. Runs that must stay active wait on
a gate file (or sleep, where the brief is "a task sleeping").
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pit.cli.signals import REPEAT_WINDOW
from pit.store.runstore import RunStore
from tests.conftest import Background, Pit, Workspace, wait_until
from tests.pgcluster import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TOKEN = "hook-token-4711"
SECRETS = f'[global]\nhook_token = "{TOKEN}"\n'
STARTUP_GUARD = 20.0
"""Seconds pit serve may take to start listening."""


def webhook_dag(workspace: Workspace, name: str, script: str, dag_keys: str = "") -> Path:
    keys = f'{dag_keys}\n[dag.webhook]\ntoken_secret = "hook_token"\n'
    return workspace.shell_project(name, {"work": script}, dag_keys=keys)


class Serving:
    """A running `pit serve` and an httpx client for its webhooks."""

    def __init__(self, process: Background, port: int) -> None:
        self.process = process
        self.port = port
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0)

    def post(self, dag: str, token: str | None = TOKEN) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return self.client.post(f"/webhook/{dag}", headers=headers)

    def answers(self) -> bool:
        if self.process.process.poll() is not None:
            pytest.fail(
                f"pit serve exited ({self.process.process.returncode}) before listening:\n"
                f"{self.process.stdout()}{self.process.stderr()}"
            )
        # A plain connect first: httpx's own failed connects leave sockets for the garbage
        # collector (a ResourceWarning in whichever test runs then).
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                pass
        except OSError:
            return False
        try:
            self.post("__probe__")
        except httpx.TransportError:
            return False
        return True

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def exit_code(self, timeout: float = 30.0) -> int:
        code = self.process.wait(timeout=timeout)
        self.client.close()
        return code

    def output(self) -> str:
        return self.process.stdout() + self.process.stderr()


@contextlib.contextmanager
def serve(
    pit: Pit, workspace: Workspace, *args: str, secrets_text: str = SECRETS
) -> Iterator[Serving]:
    secrets = workspace.write("secrets.toml", secrets_text)
    port = free_port()
    process = pit.start("--secrets", str(secrets), "serve", "--port", str(port), *args)
    serving = Serving(process, port)
    try:
        wait_until(serving.answers, timeout=STARTUP_GUARD, what="pit serve to listen")
        yield serving
    finally:
        serving.client.close()


def manifest(workspace: Workspace, run_id: str) -> dict[str, Any]:
    return workspace.manifest(workspace.root / "runs" / run_id)


def finished(workspace: Workspace, run_id: str) -> bool:
    path = workspace.root / "runs" / run_id / "run.json"
    return path.is_file() and manifest(workspace, run_id)["state"] in ("success", "failed")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_webhook_answers_and_sigterm_lets_the_run_finish(workspace: Workspace, pit: Pit) -> None:
    webhook_dag(workspace, "hook", "sleep 2\necho done\n")  # overlap = "skip"
    with serve(pit, workspace) as server:
        accepted = server.post("hook")
        overlap = server.post("hook")
        wrong = server.post("hook", token="not-the-token")
        missing = server.post("hook", token=None)
        unknown = server.post("nosuch")
        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["run_id"]
        wait_until(lambda: workspace.running_task("hook", "work"), what="the task to start")
        server.signal(signal.SIGTERM)
        code = server.exit_code()
        output = server.output()

    assert accepted.json() == {"run_id": run_id, "dag": "hook"}
    assert (overlap.status_code, wrong.status_code, missing.status_code) == (409, 401, 401)
    assert unknown.status_code == 404
    assert "error" in overlap.json()
    assert code == 0, output
    assert [r.name for r in workspace.run_dirs("hook")] == [run_id]
    record = manifest(workspace, run_id)
    assert (record["state"], record["trigger"]) == ("success", "webhook"), output
    assert workspace.task_states(workspace.root / "runs" / run_id) == {"work": "success"}
    assert TOKEN not in output


def test_a_second_sigterm_stops_the_run_at_once(
    workspace: Workspace, pit: Pit, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    script = f"echo $$ > {pids}/task\nsleep 300 &\necho $! > {pids}/child\nwait\n"
    webhook_dag(workspace, "hook", script)
    with serve(pit, workspace) as server:
        accepted = server.post("hook")
        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["run_id"]
        wait_until(
            lambda: all((pids / n).is_file() and (pids / n).read_text() for n in ("task", "child")),
            what="the task and its child to start",
        )
        task_pids = [int((pids / n).read_text()) for n in ("task", "child")]
        server.signal(signal.SIGTERM)
        time.sleep(REPEAT_WINDOW + 0.2)  # sooner, it is the same stop delivered twice
        assert server.process.process.poll() is None, "pit exited before its run ended"
        sent = time.monotonic()
        server.signal(signal.SIGTERM)
        code = server.exit_code()
        took = time.monotonic() - sent
        output = server.output()

    try:
        assert code == 0, output
        assert took < 10, f"pit took {took:.1f}s to stop after the second SIGTERM"
        assert manifest(workspace, run_id)["state"] == "cancelled", output
        assert [pid for pid in task_pids if alive(pid)] == []
    finally:
        for pid in task_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_verbose_logs_each_state_change_and_each_output_line(
    workspace: Workspace, pit: Pit
) -> None:
    webhook_dag(workspace, "hook", "echo first line\necho second line\n")
    with serve(pit, workspace, "--verbose") as server:
        run_id = server.post("hook").json()["run_id"]
        wait_until(lambda: finished(workspace, run_id), what="the run to end")
        server.signal(signal.SIGTERM)
        assert server.exit_code() == 0
        lines = [line.split(maxsplit=3)[-1] for line in server.output().splitlines()]

    assert f"{run_id} [work] first line" in lines
    assert f"{run_id} [work] second line" in lines
    changes = [line for line in lines if line.startswith(run_id) and "[work]" not in line]
    assert changes == [
        f"{run_id} started (webhook)",
        f"{run_id} work running",
        f"{run_id} work success",
        f"{run_id} success",
    ]


def executor_pids(pid: int) -> list[int]:
    # Each thread has its own list of the children it started.
    threads = Path(f"/proc/{pid}/task").iterdir()
    children = [child for thread in threads for child in (thread / "children").read_text().split()]
    return [
        int(child)
        for child in children
        if b"pit.cli.executor" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def test_pit_serve_killed_leaves_no_executor_and_no_task_behind(
    workspace: Workspace, pit: Pit, tmp_path: Path
) -> None:
    """SIGKILL gives pit serve no chance to stop anything: its executor sees pit's end of their
    socket close, kills the runs' process groups and exits."""
    pids = tmp_path / "pids"
    pids.mkdir()
    script = f"echo $$ > {pids}/task\nsleep 300 &\necho $! > {pids}/child\nwait\n"
    webhook_dag(workspace, "hook", script)
    with serve(pit, workspace) as server:
        assert server.post("hook").status_code == 202
        wait_until(
            lambda: all((pids / n).is_file() and (pids / n).read_text() for n in ("task", "child")),
            what="the task and its child to start",
        )
        left = [int((pids / n).read_text()) for n in ("task", "child")]
        left += executor_pids(server.process.pid)
        assert len(left) == 3, "one executor process"
        server.signal(signal.SIGKILL)
        server.exit_code()
    try:
        wait_until(
            lambda: not any(alive(pid) for pid in left), what="everything pit started to end"
        )
    finally:
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_sighup_adds_a_new_webhook(workspace: Workspace, pit: Pit) -> None:
    webhook_dag(workspace, "hook", ":\n")
    with serve(pit, workspace) as server:
        assert server.post("late").status_code == 404
        webhook_dag(workspace, "late", "echo late\n")
        server.signal(signal.SIGHUP)
        responses: list[httpx.Response] = []

        def accepted() -> bool:
            responses.append(server.post("late"))
            return responses[-1].status_code == 202

        wait_until(accepted, timeout=10, what="the new DAG's webhook after SIGHUP")
        run_id = responses[-1].json()["run_id"]
        wait_until(lambda: finished(workspace, run_id), what="the new DAG's run")
        server.signal(signal.SIGTERM)
        code = server.exit_code()

    assert {r.status_code for r in responses} <= {404, 202}
    assert manifest(workspace, run_id)["state"] == "success"
    assert code == 0


@pytest.mark.parametrize("trigger", ["webhook", "cron"])
def test_a_port_in_use_at_start_is_a_one_line_error(
    workspace: Workspace, pit: Pit, trigger: str
) -> None:
    """Bad input, not a pit bug: `pit: <what and the fix>` and exit 2, as for every PitError,
    not a traceback. pit serve listens whatever its DAGs' triggers: the API is on its port."""
    if trigger == "webhook":
        webhook_dag(workspace, "hook", ":\n")
    else:
        workspace.shell_project("tick", {"work": ":\n"}, dag_keys='schedule = "0 0 1 1 *"')
    secrets = workspace.write("secrets.toml", SECRETS)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = pit("--secrets", str(secrets), "serve", "--port", str(port))

    assert done.returncode == 2, done.stdout + done.stderr
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_invalid_project_stops_pit_serve_at_start_listing_every_problem(
    workspace: Workspace, pit: Pit
) -> None:
    """Fail fast, as a service manager expects: exit 2, every problem listed."""
    workspace.shell_project("tick", {"work": ":\n"}, dag_keys='schedule = "0 0 1 1 *"')
    workspace.project("broken", '[dag]\nname = "broken"\nschedule = "61 * * * *"\n')
    workspace.project("worse", '[dag\nname = "worse"\n')

    done = pit("serve", "--port", str(free_port()))

    assert done.returncode == 2, done.stdout + done.stderr
    assert "projects/broken/pit.toml" in done.stderr
    assert "projects/worse/pit.toml" in done.stderr
    assert "--keep-going" in done.stderr
    assert "Traceback" not in done.stderr


def test_keep_going_serves_the_valid_dags(workspace: Workspace, pit: Pit) -> None:
    workspace.shell_project("tick", {"work": ":\n"}, dag_keys='schedule = "0 0 1 1 *"')
    workspace.project("worse", '[dag\nname = "worse"\n')
    process = pit.start("serve", "--port", str(free_port()), "--keep-going")
    wait_until(lambda: "serving 1 DAG " in process.stdout(), what="pit serve to start")
    os.kill(process.pid, signal.SIGTERM)

    assert process.wait() == 0, process.stdout() + process.stderr()
    assert "projects/worse/pit.toml" in process.stderr()


def test_nothing_to_serve_is_an_error(workspace: Workspace, pit: Pit) -> None:
    workspace.shell_project("manual_only", {"work": ":\n"})

    done = pit("serve", "--port", str(free_port()))

    assert done.returncode == 2, done.stdout + done.stderr
    assert "nothing to serve" in done.stderr


def test_webhooks_without_a_secrets_file_are_warned_of_at_start(
    workspace: Workspace, pit: Pit
) -> None:
    webhook_dag(workspace, "hook", ":\n")
    port = free_port()
    process = pit.start("serve", "--port", str(port))
    wait_until(lambda: "serving 1 DAG " in process.stdout(), what="pit serve to start")
    answer = httpx.post(
        f"http://127.0.0.1:{port}/webhook/hook", headers={"Authorization": "Bearer x"}
    )
    os.kill(process.pid, signal.SIGTERM)

    assert process.wait() == 0, process.stdout() + process.stderr()
    assert "no secrets file" in process.stderr()
    assert "hook" in process.stderr()
    assert answer.status_code == 503  # the token cannot be read: not "no such webhook"
    assert answer.json()["error"].startswith("webhook token not available")


def test_the_runs_of_pit_serve_are_in_the_run_store(workspace: Workspace, pit: Pit) -> None:
    webhook_dag(workspace, "hook", "echo done\n", 'overlap = "allow"')
    with serve(pit, workspace) as server:
        run_ids = [server.post("hook").json()["run_id"] for _ in range(3)]
        wait_until(lambda: all(finished(workspace, r) for r in run_ids), what="the runs to end")
        server.signal(signal.SIGTERM)
        assert server.exit_code() == 0, server.output()

    with RunStore.open(workspace.root / ".pit" / "pit.db") as store:
        indexed = {r.run_id: (r.state.value, r.trigger) for r in store.runs()}
    assert indexed == {run_id: ("success", "webhook") for run_id in run_ids}
