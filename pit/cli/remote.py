"""`pit logs --server URL <run_id | dag> [-f]`: a run's logs from a remote pit serve.

The run is found through the REST API (a run id, or a DAG's latest run), then read over the
API's WebSocket (`/api/runs/{id}/stream`): what is on disk, and with `-f` every line until the
run ends. The bearer token, when pit serve asks for one, comes from `PIT_API_TOKEN` (never
the command line, where `ps` would show it).
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from pit.errors import LogsError

TOKEN_ENV = "PIT_API_TOKEN"
TIMEOUT = 10.0
EXIT = {"success": 0, "failed": 1, "cancelled": 130}
"""Exit codes of `pit logs -f` by how the run ended: those of `pit run`."""


def remote_logs(server: str, target: str, *, follow: bool) -> int:
    """Print the logs of `target` (a run id, or a DAG: its latest run) from the pit serve at
    `server`; with `follow`, until the run ends. The exit code."""
    base = urllib.parse.urlsplit(server.rstrip("/"))
    if base.scheme not in ("http", "https") or not base.hostname:
        raise LogsError(f"--server wants a URL such as http://host:9090, not '{server}'")
    token = os.environ.get(TOKEN_ENV) or None
    run_id = _run_id(server.rstrip("/"), target, token)
    if not follow:
        return _print_logs(server.rstrip("/"), run_id, token)
    import trio  # the stream: only now

    return trio.run(_stream, base, run_id, token)


def _print_logs(server: str, run_id: str, token: str | None) -> int:
    """Each task's whole log as it stands, as `pit logs` prints a local run's."""
    run = _get(server, f"/api/runs/{run_id}", token)
    tasks = run["tasks"] if run else []
    out = sys.stdout.buffer
    for task in tasks:
        if len(tasks) > 1:
            out.write(f"==> {task['name']} ({task['status']}) <==\n".encode())
        log = _get(server, f"/api/runs/{run_id}/tasks/{task['name']}/log", token, raw=True)
        out.write(log if log is not None else b"(no output: the task did not start)\n")
    out.flush()
    return 0


def _run_id(server: str, target: str, token: str | None) -> str:
    quoted = urllib.parse.quote(target, safe="")
    found = _get(server, f"/api/runs/{quoted}", token)
    if found is not None:
        return str(found["id"])
    latest = _get(server, f"/api/runs?dag={quoted}&limit=1", token)
    if latest and latest["runs"]:
        return str(latest["runs"][0]["id"])
    raise LogsError(f"{server} has no run '{target}' and no runs of a DAG '{target}'")


def _get(server: str, path: str, token: str | None, *, raw: bool = False) -> Any:
    """The JSON answer of a GET (its bytes when `raw`); None for a 404."""
    request = urllib.request.Request(server + path)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            body = response.read()
            return body if raw else json.loads(body)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        hint = f" (set {TOKEN_ENV})" if exc.code == 401 else ""
        raise LogsError(f"{server} answered {exc.code} to {path}{hint}") from None
    except (OSError, ValueError) as exc:
        raise LogsError(f"cannot reach pit serve at {server}: {exc}") from exc


async def _stream(base: urllib.parse.SplitResult, run_id: str, token: str | None) -> int:
    """Follow the run over the WebSocket until it ends: its exit code, as `pit run`'s."""
    import trio
    import trio_websocket

    host = base.hostname or ""
    port = base.port or (443 if base.scheme == "https" else 80)
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    out = sys.stdout
    status = None
    try:
        stream: trio.SocketStream | trio.SSLStream[trio.SocketStream]
        stream = await trio.open_tcp_stream(host, port)
        if base.scheme == "https":
            stream = trio.SSLStream(stream, ssl.create_default_context(), server_hostname=host)
        # The stream is closed here whatever happens: trio-websocket leaves the socket of a
        # failed handshake, or of a connection the server closed, to the garbage collector.
        async with stream, trio.open_nursery() as nursery:
            socket = await trio_websocket.wrap_client_stream(
                nursery, stream, host, f"/api/runs/{run_id}/stream", extra_headers=headers
            )
            several = True
            while True:
                try:
                    message = json.loads(await socket.get_message())
                except trio_websocket.ConnectionClosed:
                    break
                event, data = message.get("event"), message.get("data")
                if event == "run":
                    several = len(data.get("tasks", ())) > 1
                elif event == "logs":
                    for line in data:
                        prefix = f"{line['task_name']} | " if several else ""
                        out.write(f"{prefix}{line['message']}\n")
                    out.flush()
                elif event == "complete":
                    status = data.get("status")
            await socket.aclose()
            nursery.cancel_scope.cancel()
    except trio_websocket.HandshakeError as exc:
        raise LogsError(f"pit serve refused the log stream of {run_id}: {exc}") from None
    except OSError as exc:
        raise LogsError(f"cannot reach pit serve at {base.geturl()}: {exc}") from exc
    if status is None:
        print(f"pit: the stream of {run_id} ended before the run did", file=sys.stderr)
        return 1
    return EXIT.get(status, 1)
