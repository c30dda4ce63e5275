"""The REST API of a real `pit serve`, over real HTTP: the original Pit's paths and fields, runs
started and cancelled, the log stream, and the tokens.

Each test starts `pit serve` on a workspace of webhook DAGs (so it has a trigger to serve) and
talks to its port with httpx. Runs that must stay active wait on a gate file.
"""

from __future__ import annotations

import getpass
import json
import signal
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from tests.conftest import Pit, Workspace, wait_until
from tests.e2e.test_serve import SECRETS, Serving, serve, webhook_dag

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GATE = "gate"
"""A task that waits for this file in the workspace root."""


def wait_for_gate(workspace: Workspace) -> str:
    return f'while [ ! -e "{workspace.root / GATE}" ]; do sleep 0.05; done\n'


def get(server: Serving, path: str, **kwargs: Any) -> Any:
    response = server.client.get(path, **kwargs)
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
    assert response.headers["content-type"] == "application/json"
    return response.json()


def ended(server: Serving, run_id: str) -> bool:
    return get(server, f"/api/runs/{run_id}")["status"] in ("success", "failed", "cancelled")


def task_running(server: Serving, run_id: str) -> bool:
    return [t["status"] for t in get(server, f"/api/runs/{run_id}")["tasks"]] == ["running"]


def texts(message: dict[str, Any]) -> list[str]:
    """The lines of a WebSocket `logs` message."""
    return [line["message"] for line in message["data"]]


def events(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The (event, data) pairs of a Server-Sent Events stream whose events each have one
    `data` line (each is taken at its `data` line: a client may hold the blank line after it
    until more arrives)."""
    name = ""
    for line in lines:
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield name, json.loads(line.removeprefix("data: "))


def test_the_original_pits_paths_answer_with_its_fields(workspace: Workspace, pit: Pit) -> None:
    webhook_dag(
        workspace,
        "hook",
        "echo hello\necho 'ERROR: boom'\nexit 0\n",
        dag_keys='timeout = "1h30m"',
    )
    with (workspace.root / "projects" / "hook" / "pit.toml").open("a") as pit_toml:
        pit_toml.write(
            '\n[[outputs]]\nname = "sales"\ntype = "table"\nlocation = "warehouse.sales"\n'
        )
    with serve(pit, workspace) as server:
        assert get(server, "/api/health") == {"status": "ok"}
        [dag] = get(server, "/api/dags")["dags"]
        assert dag["name"] == "hook"
        assert dag["task_count"] == 1
        assert dag["latest_run"] is None
        assert dag["schedule"] == ""
        assert dag["triggers"] == ["webhook"]

        started = server.client.post("/api/dags/hook/runs")
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        assert started.json()["dag"] == "hook"
        wait_until(lambda: ended(server, run_id), what="the run to end")

        run = get(server, f"/api/runs/{run_id}")
        assert {key: run[key] for key in ("id", "dag_name", "status", "trigger", "error")} == {
            "id": run_id,
            "dag_name": "hook",
            "status": "success",
            "trigger": "api",
            "error": None,
        }
        assert run["started_at"].endswith("Z")
        assert run["ended_at"].endswith("Z")
        [task] = run["tasks"]
        assert task["name"] == "work"
        assert task["status"] == "success"
        assert task["attempts"] == 1

        detail = get(server, "/api/dags/hook")
        assert detail["overlap"] == "skip"
        assert detail["timeout"] == "1h30m0s"
        assert detail["tasks"] == [
            {
                "name": "work",
                "script": "tasks/work.sh",
                "depends_on": [],
                "type": "script",
                "timeout_seconds": None,
                "retries": 0,
            }
        ]
        wait_until(
            lambda: [r["id"] for r in get(server, "/api/dags/hook")["recent_runs"]] == [run_id],
            what="the store to hold the run",
        )
        assert get(server, "/api/dags")["dags"][0]["latest_run"]["id"] == run_id
        assert get(server, "/api/outputs") == {
            "outputs": [
                {
                    "dag_name": "hook",
                    "name": "sales",
                    "type": "table",
                    "location": "warehouse.sales",
                }
            ]
        }
        assert get(server, "/api/outputs", params={"dag": "other"}) == {"outputs": []}

        scraped = server.client.get("/metrics")
        assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
        samples = dict(line.rsplit(" ", 1) for line in scraped.text.splitlines() if line[0] != "#")
        assert samples['pit_runs_started_total{dag="hook"}'] == "1"
        assert samples['pit_runs_finished_total{dag="hook",state="success"}'] == "1"
        assert samples['pit_task_duration_seconds_count{dag="hook"}'] == "1"
        assert samples['pit_task_duration_seconds_bucket{dag="hook",le="+Inf"}'] == "1"
        assert samples["pit_active_runs"] == "0"
        assert samples["pit_executor_restarts_total"] == "0"

        with server.client.stream("GET", f"/api/runs/{run_id}/logs") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            replay = list(events(stream.iter_lines()))
        logs = [data for name, data in replay if name == "log"]
        assert [(e["task_name"], e["message"], e["level"]) for e in logs[1:]] == [
            ("work", "hello", "info"),
            ("work", "ERROR: boom", "error"),
        ]
        assert logs[0]["message"].startswith("=== attempt 1/1 at ")
        assert {e["attempt"] for e in logs} == {1}
        assert all(e["run_id"] == run_id and e["dag_name"] == "hook" for e in logs)
        assert replay[-1] == ("complete", {"status": "success"})


def test_runs_page_by_cursor_and_filter_by_state(workspace: Workspace, pit: Pit) -> None:
    webhook_dag(workspace, "hook", "exit 0\n", dag_keys='overlap = "allow"')
    with serve(pit, workspace) as server:
        ids = [server.client.post("/api/dags/hook/runs").json()["run_id"] for _ in range(3)]
        wait_until(
            lambda: len(get(server, "/api/runs", params={"state": "success"})["runs"]) == 3,
            what="three runs in the store",
        )
        first = get(server, "/api/runs", params={"limit": 2})
        assert [r["id"] for r in first["runs"]] == ids[::-1][:2]
        rest = get(server, "/api/runs", params={"limit": 2, "before": first["next"]})
        assert [r["id"] for r in rest["runs"]] == [ids[0]]
        assert rest["next"] is None
        assert get(server, "/api/runs", params={"state": "failed"})["runs"] == []
        assert get(server, "/api/runs", params={"dag": "other"})["runs"] == []

        for path, status, message in [
            ("/api/runs?limit=0", 400, "limit must be a whole number from 1"),
            ("/api/runs?limit=ten", 400, "limit must be a whole number from 1"),
            ("/api/runs?limit=", 400, "limit must be a whole number from 1"),
            ("/api/dags?recent=", 400, "recent must be a whole number from 1"),
            ("/api/runs?state=done", 400, "state must be one of"),
            ("/api/runs?state=", 400, "state must be one of"),
            ("/api/runs/20240101_000000.000_nosuch", 404, "run not found"),
            ("/api/runs/..%2F..%2Fetc", 404, ""),
            ("/api/runs/.hidden", 404, "run not found"),
            ("/api/dags/nosuch", 404, "dag not found"),
            ("/api/dags/nosuch/logs", 404, "dag not found"),
            ("/api/nosuch", 404, ""),
        ]:
            response = server.client.get(path)
            assert response.status_code == status, path
            assert message in response.json()["error"], path


def test_a_run_is_cancelled_through_the_api_and_says_by_whom(
    workspace: Workspace, pit: Pit
) -> None:
    webhook_dag(workspace, "slow", wait_for_gate(workspace), dag_keys='overlap = "queue"')
    with serve(pit, workspace) as server:
        active = server.client.post("/api/dags/slow/runs").json()["run_id"]
        waiting = server.client.post("/api/dags/slow/runs").json()["run_id"]
        wait_until(lambda: task_running(server, active), what="the task to start")
        assert get(server, f"/api/runs/{waiting}")["status"] == "pending"

        dropped = server.client.post(f"/api/runs/{waiting}/cancel")
        assert dropped.status_code == 200, dropped.text
        assert dropped.json() == {"run_id": waiting, "status": "cancelled"}
        stopping = server.client.post(f"/api/runs/{active}/cancel")
        assert stopping.status_code == 202, stopping.text
        assert stopping.json() == {"run_id": active, "status": "cancelling"}
        wait_until(lambda: ended(server, active), what="the cancelled run to end")

        for run_id in (active, waiting):
            run = get(server, f"/api/runs/{run_id}")
            assert run["status"] == "cancelled", run
            assert run["error"] == "cancelled by the API (127.0.0.1)", run
        again = server.client.post(f"/api/runs/{active}/cancel")
        assert again.status_code == 409
        assert again.json() == {"error": f"run {active} has ended (cancelled)"}
        unknown = server.client.post("/api/runs/20240101_000000.000_slow/cancel")
        assert unknown.status_code == 404
        assert server.client.post("/api/dags/nosuch/runs").status_code == 404
        params = server.client.post("/api/dags/slow/runs", json={"params": {"day": "1"}})
        assert params.status_code == 400


def test_a_live_run_streams_its_lines_as_they_come(workspace: Workspace, pit: Pit) -> None:
    script = f"echo first\n{wait_for_gate(workspace)}echo last\n"
    webhook_dag(workspace, "slow", script)
    with serve(pit, workspace) as server:
        run_id = server.client.post("/api/dags/slow/runs").json()["run_id"]
        wait_until(
            lambda: get(server, "/api/runs", params={"state": "running"})["runs"] != [],
            what="the store to hold the run as running",
        )
        seen = []
        with server.client.stream("GET", "/api/dags/slow/logs") as stream:
            for name, data in events(stream.iter_lines()):
                seen.append((name, data.get("message", data.get("status"))))
                if data.get("message") == "first":  # live: the run waits on the gate
                    assert not ended(server, run_id)
                    (workspace.root / GATE).touch()
        assert seen[1:] == [("log", "first"), ("log", "last"), ("complete", "success")]
        tail = server.client.get(f"/api/runs/{run_id}/logs", params={"lines": 1})
        assert [e["message"] for n, e in events(iter(tail.text.split("\n"))) if n == "log"] == [
            "last"
        ]


API_SECRETS = f'{SECRETS}api = "full-token"\napi_read = "read-token"\n'


def test_the_api_tokens_guard_every_path_but_health(workspace: Workspace, pit: Pit) -> None:
    webhook_dag(workspace, "hook", "exit 0\n")
    workspace.config('api_token = "api"\napi_read_token = "api_read"\n')
    with serve(pit, workspace, secrets_text=API_SECRETS) as server:
        client = server.client

        def auth(token: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token}"}

        assert client.get("/api/health").status_code == 200
        for headers in ({}, auth("wrong"), {"Authorization": "Basic full-token"}):
            refused = client.get("/api/dags", headers=headers)
            assert refused.status_code == 401
            assert refused.json() == {"error": "unauthorized"}
            assert client.post("/api/dags/hook/runs", headers=headers).status_code == 401
        assert client.get("/api/dags", headers=auth("read-token")).status_code == 200
        read_only = client.post("/api/dags/hook/runs", headers=auth("read-token"))
        assert read_only.status_code == 403
        assert "read-only" in read_only.json()["error"]
        assert client.post("/api/dags/hook/runs", headers=auth("full-token")).status_code == 202


def test_an_api_token_that_cannot_be_read_closes_the_api(workspace: Workspace, pit: Pit) -> None:
    """A token configured but missing from the secrets must not leave the API open."""
    webhook_dag(workspace, "hook", "exit 0\n")
    workspace.config('api_token = "no_such_secret"\n')
    with serve(pit, workspace) as server:
        closed = server.client.get("/api/dags")
        assert closed.status_code == 503
        assert "no_such_secret" in closed.json()["error"]
        assert server.client.get("/api/health").status_code == 200
    assert "the API answers 503 until its token can be read" in server.output()


def test_pit_cancel_stops_a_run_of_pit_serve_through_its_api(
    workspace: Workspace, pit: Pit
) -> None:
    webhook_dag(workspace, "slow", wait_for_gate(workspace))
    with serve(pit, workspace) as server:
        assert (workspace.root / ".pit" / "serve.json").is_file()
        run_id = server.client.post("/api/dags/slow/runs").json()["run_id"]
        wait_until(lambda: task_running(server, run_id), what="the task to start")

        done = pit("cancel", run_id)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "cancelling" in done.stdout
        wait_until(lambda: ended(server, run_id), what="the run to end")
        assert get(server, f"/api/runs/{run_id}")["status"] == "cancelled"

        again = pit("cancel", run_id)
        assert again.returncode == 1
        assert f"{run_id} has ended (cancelled)" in again.stdout


def test_pit_cancel_stops_a_foreground_run(workspace: Workspace, pit: Pit) -> None:
    workspace.shell_project("slow", {"work": wait_for_gate(workspace)})
    running = pit.start("run", "slow")
    wait_until(lambda: workspace.running_task("slow", "work"), what="the task to start")
    run_id = workspace.only_run("slow").name

    done = pit("cancel", run_id)

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{run_id} ended cancelled" in done.stdout
    assert running.wait() == 130
    record = workspace.manifest(workspace.only_run("slow"))
    assert record["state"] == "cancelled"
    assert record["error"] == f"cancelled by pit cancel ({getpass.getuser()})"


def test_pit_cancel_without_a_pit_serve_or_run_says_so(workspace: Workspace, pit: Pit) -> None:
    workspace.shell_project("etl", {"work": "exit 0\n"})
    unknown = pit("cancel", "20240101_000000.000_etl")
    assert unknown.returncode == 2
    assert "no run 20240101_000000.000_etl under" in unknown.stderr
    (workspace.root / "runs" / "20240101_000000.000_etl").mkdir(parents=True)
    orphan = pit("cancel", "20240101_000000.000_etl")
    assert orphan.returncode == 2
    assert "no pit serve of this workspace is running" in orphan.stderr


def test_a_paused_dag_starts_nothing_from_its_triggers_across_restarts(
    workspace: Workspace, pit: Pit
) -> None:
    webhook_dag(workspace, "hook", "exit 0\n", dag_keys='overlap = "allow"')
    with serve(pit, workspace) as server:
        paused = pit("pause", "hook")
        assert paused.returncode == 0, paused.stdout + paused.stderr
        refused = server.post("hook")
        assert refused.status_code == 409
        assert refused.json() == {"error": "hook is paused (`pit resume hook`)"}
        assert get(server, "/api/dags")["dags"][0]["paused"] is True
        by_hand = server.client.post("/api/dags/hook/runs")
        assert by_hand.status_code == 202, by_hand.text  # a run asked for by hand still starts
        server.signal(signal.SIGTERM)
        assert server.exit_code() == 0

    status = json.loads(pit("status", "--json").stdout)
    assert status[0]["paused"]["by"].startswith("the API (127.0.0.1)")
    with serve(pit, workspace) as server:
        assert server.post("hook").status_code == 409  # still paused after a restart
        assert server.client.post("/api/dags/nosuch/pause").status_code == 404
        assert pit("resume", "hook").returncode == 0
        assert server.post("hook").status_code == 202
    assert json.loads(pit("status", "--json").stdout)[0]["paused"] is None


def test_pit_pause_without_pit_serve_records_the_pause(workspace: Workspace, pit: Pit) -> None:
    workspace.shell_project("etl", {"work": "exit 0\n"}, dag_keys='schedule = "0 6 * * *"')
    assert pit("pause", "etl").returncode == 0
    table = pit("status").stdout
    assert "paused" in table.splitlines()[1], table
    unknown = pit("pause", "nosuch")
    assert unknown.returncode == 2
    assert "no DAG named 'nosuch'" in unknown.stderr
    assert pit("resume", "etl").returncode == 0
    assert "paused" not in pit("status").stdout
    (workspace.root / ".pit" / "paused.json").write_text("{damaged")
    damaged = pit("status")
    assert damaged.returncode == 0
    assert "paused.json cannot be read" in damaged.stderr
    assert pit("pause", "etl").returncode == 0  # writes it afresh
    assert "paused" in pit("status").stdout.splitlines()[1]


def test_a_task_log_is_served_whole_or_from_a_byte_on(workspace: Workspace, pit: Pit) -> None:
    webhook_dag(workspace, "hook", "echo one\necho two\n")
    with serve(pit, workspace) as server:
        run_id = server.client.post("/api/dags/hook/runs").json()["run_id"]
        wait_until(lambda: ended(server, run_id), what="the run to end")
        whole = server.client.get(f"/api/runs/{run_id}/tasks/work/log")
        assert whole.status_code == 200
        assert whole.headers["content-type"].startswith("text/plain")
        assert whole.text.endswith("one\ntwo\n")
        start = len(whole.content) - len("two\n")
        rest = server.client.get(
            f"/api/runs/{run_id}/tasks/work/log", headers={"Range": f"bytes={start}-"}
        )
        assert rest.status_code == 206
        assert rest.content == b"two\n"
        for path in (f"/api/runs/{run_id}/tasks/nosuch/log", f"/api/runs/{run_id}/tasks/.x/log"):
            missing = server.client.get(path)
            assert missing.status_code == 404
            assert missing.json() == {"error": "task log not found"}


async def test_the_websocket_streams_the_runs_records_and_lines(
    workspace: Workspace, pit: Pit
) -> None:
    import trio_websocket

    webhook_dag(workspace, "slow", f"echo first\n{wait_for_gate(workspace)}echo last\n")
    with serve(pit, workspace) as server:
        run_id = server.client.post("/api/dags/slow/runs").json()["run_id"]
        wait_until(lambda: task_running(server, run_id), what="the task to start")
        messages = []
        with trio.fail_after(30):
            # The TCP stream is ours to close: trio-websocket leaves the socket of a
            # connection the server closed to the garbage collector (a ResourceWarning).
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            async with stream, trio.open_nursery() as nursery:
                resource = f"/api/runs/{run_id}/stream"
                socket = await trio_websocket.wrap_client_stream(
                    nursery, stream, "127.0.0.1", resource
                )
                while not socket.closed:
                    try:
                        message = json.loads(await socket.get_message())
                    except trio_websocket.ConnectionClosed:
                        break
                    messages.append(message)
                    if message["event"] == "logs" and "first" in texts(message):
                        (workspace.root / GATE).touch()
                closed = socket.closed
                await socket.aclose()
        assert closed is not None
        assert closed.code == 1000
        # An unknown run is refused at the handshake.
        refused = server.client.get(
            "/api/runs/20240101_000000.000_x/stream",
            headers={
                "Connection": "Upgrade",
                "Upgrade": "websocket",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            },
        )
        assert refused.status_code == 404

    kinds = [m["event"] for m in messages]
    assert kinds[0] == "run"
    assert messages[0]["data"]["status"] == "running"
    lines = [text for m in messages if m["event"] == "logs" for text in texts(m)]
    assert lines[1:] == ["first", "last"]
    final = [m for m in messages if m["event"] == "run"][-1]["data"]
    assert final["status"] == "success"
    assert final["tasks"][0]["status"] == "success"
    assert messages[-1] == {"event": "complete", "data": {"status": "success"}}


def test_pit_logs_follows_a_run_of_a_remote_pit_serve(workspace: Workspace, pit: Pit) -> None:
    workspace.shell_project(
        "slow",
        {"first": "echo one\n", "second": f"{wait_for_gate(workspace)}echo two\n"},
        depends_on={"second": ["first"]},
        dag_keys='[dag.webhook]\ntoken_secret = "hook_token"',
    )
    workspace.config('api_token = "api"\n')
    with serve(pit, workspace, secrets_text=API_SECRETS) as server:
        url = f"http://127.0.0.1:{server.port}"
        token = {"Authorization": "Bearer full-token"}
        run_id = server.client.post("/api/dags/slow/runs", headers=token).json()["run_id"]
        refused = pit("logs", "--server", url, run_id)
        assert refused.returncode == 2
        assert "answered 401" in refused.stderr
        assert "PIT_API_TOKEN" in refused.stderr

        following = pit.start(
            "logs", "--server", url, "-f", "slow", env={"PIT_API_TOKEN": "full-token"}
        )
        wait_until(lambda: "first | one" in following.stdout(), what="the live line")
        (workspace.root / GATE).touch()
        assert following.wait() == 0, following.stderr()
        assert following.stdout().splitlines()[-1] == "second | two"

        whole = pit("logs", "--server", url, run_id, env={"PIT_API_TOKEN": "full-token"})
        assert whole.returncode == 0, whole.stderr
        assert "==> second (success) <==" in whole.stdout
        assert whole.stdout.rstrip().endswith("two")
