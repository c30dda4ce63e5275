"""The REST API on pit serve's port: the original Pit's read-only paths, and steering.

| path | answer |
|---|---|
| `GET /api/health` | `{"status": "ok"}`, without a token |
| `GET /api/dags`, `/api/dags/{name}` | the DAGs served, each with its latest or recent runs |
| `GET /api/runs` | `?dag=&state=&limit=&before=`, newest first; `next`: the next page's `before` |
| `GET /api/runs/{id}` | one run with its tasks |
| `GET /api/outputs` | `?dag=`: the outputs the DAGs declare |
| `GET /api/runs/{id}/logs`, `/api/dags/{name}/logs` | Server-Sent Events: `log`, then `complete` |
| `GET /api/runs/{id}/tasks/{task}/log` | the whole log as text; `Range: bytes=N-` for the rest |
| WebSocket `/api/runs/{id}/stream` | JSON: `run` (its record, on change), `logs`, `complete` |
| `POST /api/dags/{name}/runs` | start a run now (as a webhook does): 202 `{run_id, dag}` |
| `POST /api/runs/{id}/cancel` | cancel a run of this pit serve |
| `POST /api/runs/{id}/rerun` | `{"from": "failed"}` or `{"tasks": [...]}`: a new run reusing it |
| `POST /api/dags/{name}/pause`, `.../resume` | its triggers start nothing / start again |
| `GET /metrics` | the Prometheus text format (`web/metrics.py`), behind the same tokens |

The field names are the original Pit's (`../shared/spec/rest-api.md` in the repository's
spec): a run is `{id, dag_name, status, started_at, ended_at, trigger, error}`, times RFC 3339
in UTC. Runs are read from the run store, on connections of the API's own in worker threads,
and one run from its run.json, which is written before the store is (a run just accepted has a
folder and no record yet: it is `pending`).

Auth: `api_token` in pit_config.toml names a secret whose value is the bearer token for every
path but `/api/health`; `api_read_token` one that may only read (a `POST` with it is 403).
Without either the API answers only clients on this machine (127.0.0.1, ::1), whatever address
pit serve listens on for webhooks.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Literal, TypeVar

import trio
from quart import Response, request, send_file, websocket
from quart.typing import ResponseReturnValue
from quart_trio import QuartTrio
from werkzeug.exceptions import BadRequest

from pit.clock import zone_of
from pit.messages.run import RunRecord
from pit.messages.trigger import CancelAnswer, CancelRequested, PauseRequested, Rerun
from pit.messages.web import WebHandle
from pit.spec.cron import describe, next_fire
from pit.spec.dag import DagSpec
from pit.spec.states import RunState
from pit.store.retention import read_log
from pit.store.rundir import RunPaths, dag_of
from pit.store.runstore import RunStore, StoreError
from pit.web.access import Sessions, authorize
from pit.web.follow import Batch, RunFeeds, read_record, run_paths
from pit.web.graph import GraphJson, layout
from pit.web.idempotency import HEADER as IDEMPOTENCY_HEADER
from pit.web.idempotency import IdempotencyKeys
from pit.web.metrics import CONTENT_TYPE, render
from pit.web.openapi import Routes
from pit.web.responses import error, request_run, run_answer, start_run
from pit.web.shapes import (
    RERUN_REQUEST,
    RUN_REQUEST,
    CancelJson,
    DagDetailJson,
    DagJson,
    DagsJson,
    DagSummaryJson,
    ErrorJson,
    HealthJson,
    OutputsJson,
    PausedJson,
    RunDetailJson,
    RunsPageJson,
    RunStartedJson,
    rfc3339,
    run_json,
    run_with_tasks,
)

T = TypeVar("T")

LINES_QUERY = {
    "lines": (
        {"type": "integer", "minimum": 1, "maximum": 999_999_999},
        "replay only the last N lines of each task's log",
    )
}

VERSION = "1"
"""The API's version in its OpenAPI document."""

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
RECENT_RUNS = 10
"""Runs shown with a DAG (`/api/dags/{name}`)."""
MAX_RECENT = 50
"""Runs listed per DAG at most by `/api/dags?recent=N`."""


class StoreReader:
    """Connections to the run store for the API's reads: each used by one worker thread at a
    time, kept for the next read, closed with the app."""

    def __init__(self, handle: WebHandle) -> None:
        self._path = handle.store
        self._idle: list[RunStore] = []

    async def read(self, query: Callable[[RunStore], T]) -> T:
        return await trio.to_thread.run_sync(self._read, query)

    def _read(self, query: Callable[[RunStore], T]) -> T:
        try:
            store = self._idle.pop()  # list.pop and append are atomic: threads share the list
        except IndexError:
            store = RunStore.open(self._path)
        try:
            return query(store)
        finally:
            self._idle.append(store)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


def add_api(app: QuartTrio, handle: WebHandle, sessions: Sessions, keys: IdempotencyKeys) -> None:
    """The API's routes on `app`, answering from `handle`; browsers are known by `sessions`
    (`pit.web.access`); a trigger's `Idempotency-Key` by `keys`."""
    store = StoreReader(handle)
    served = handle.served
    routes = Routes(app)
    feeds = RunFeeds(runs_dir=handle.runs_dir, until=handle.stopping, nursery=lambda: app.nursery)

    @app.after_serving
    async def close_store() -> None:
        store.close()

    @app.before_request
    async def authorize_request() -> ResponseReturnValue | None:
        if not _guarded(request.path):
            return None
        reads = request.method in ("GET", "HEAD")
        return authorize(request, served.api, sessions, reads=reads)

    @app.before_websocket
    async def authorize_websocket() -> ResponseReturnValue | None:
        return authorize(websocket, served.api, sessions, reads=True)

    @app.errorhandler(StoreError)
    async def store_failed(exc: StoreError) -> ResponseReturnValue:
        return error(503, str(exc))

    @routes.get(
        "/metrics",
        "Prometheus metrics (text format 0.0.4)",
        {200: str},
        media="text/plain",
    )
    async def metrics() -> ResponseReturnValue:
        return Response(render(handle.metrics), mimetype=None, content_type=CONTENT_TYPE)

    @routes.get("/api/health", "Whether pit serve answers (no token needed)", {200: HealthJson})
    async def health() -> ResponseReturnValue:
        return {"status": "ok"}

    @routes.get(
        "/api/dags",
        "The DAGs served, each with its latest run (and its recent runs with `recent`)",
        {200: DagsJson, 400: ErrorJson},
        query={
            "recent": (
                {"type": "integer", "minimum": 1, "maximum": 999_999_999},
                f"list each DAG's last N runs, newest first (default 1, at most {MAX_RECENT})",
            )
        },
    )
    async def dags() -> ResponseReturnValue:
        specs = sorted(served.dags.values(), key=lambda dag: dag.name)
        recent = min(_whole(request.args.get("recent"), 1, "recent"), MAX_RECENT)

        def recent_of(runs: RunStore) -> dict[str, list[RunRecord]]:
            return {d.name: runs.runs(dag=d.name, limit=recent, tasks=False) for d in specs}

        found = await store.read(recent_of)
        now = handle.clock.now()
        answer: list[DagSummaryJson] = []
        for dag in specs:
            shown = [run_json(record) for record in found.get(dag.name, [])]
            answer.append(
                {
                    **_dag_summary(dag, now, paused=dag.name in served.paused),
                    "latest_run": shown[0] if shown else None,
                    "recent_runs": shown,
                }
            )
        return {"dags": answer}

    @routes.get(
        "/api/dags/<name>",
        "A DAG: its settings, tasks and recent runs",
        {200: DagDetailJson, 404: ErrorJson},
    )
    async def dag(name: str) -> ResponseReturnValue:
        spec = served.dags.get(name)
        if spec is None:
            return error(404, "dag not found")
        recent = await store.read(lambda runs: runs.runs(dag=name, limit=RECENT_RUNS, tasks=False))
        return {
            **_dag_summary(spec, handle.clock.now(), paused=name in served.paused),
            "overlap": spec.overlap.value,
            "timeout": _go_duration(spec.timeout),
            "timeout_seconds": spec.timeout,
            "tasks": [
                {
                    "name": task.name,
                    "script": task.script,
                    "depends_on": list(task.depends_on),
                    "type": task.type.value,
                    "timeout_seconds": task.timeout,
                    "retries": task.retries,
                }
                for task in spec.tasks
            ],
            "recent_runs": [run_json(record) for record in recent],
        }

    @routes.get(
        "/api/dags/<name>/graph",
        "The DAG's tasks laid out left to right: boxes and the edges between them",
        {200: GraphJson, 404: ErrorJson},
    )
    async def graph(name: str) -> ResponseReturnValue:
        spec = served.dags.get(name)
        if spec is None:
            return error(404, "dag not found")
        return dict(layout(tuple((task.name, task.depends_on) for task in spec.tasks)))

    @routes.get(
        "/api/runs",
        "Runs, newest first",
        {200: RunsPageJson, 400: ErrorJson},
        query={
            "dag": (str, "only this DAG's runs"),
            "state": (
                Literal["pending", "running", "success", "failed", "cancelled"],
                "only runs in this state",
            ),
            "limit": (
                {"type": "integer", "minimum": 1, "maximum": 999_999_999},
                f"at most this many (default {DEFAULT_LIMIT}, capped at {MAX_LIMIT})",
            ),
            "before": (str, "runs older than this run id: the `next` of the page before"),
        },
    )
    async def runs() -> ResponseReturnValue:
        args = request.args
        limit = min(_whole(args.get("limit"), DEFAULT_LIMIT, "limit"), MAX_LIMIT)
        state = args.get("state")  # given empty, it is no state either: a 400 says so
        if state is not None and state not in _STATES:
            return error(400, f"state must be one of {', '.join(sorted(_STATES))}")
        page = await store.read(
            lambda runs: runs.runs(
                dag=args.get("dag") or None,
                state=RunState(state) if state else None,
                before=args.get("before") or None,
                limit=limit + 1,
                tasks=False,
            )
        )
        shown = page[:limit]
        more = len(page) > len(shown)
        return {
            "runs": [run_json(record) for record in shown],
            "next": shown[-1].run_id if more else None,
        }

    @routes.get("/api/runs/<run_id>", "A run and its tasks", {200: RunDetailJson, 404: ErrorJson})
    async def run(run_id: str) -> ResponseReturnValue:
        record = await _find_run(run_id)
        if record is None:
            return error(404, "run not found")
        return run_with_tasks(record)

    @routes.get(
        "/api/outputs",
        "The outputs the DAGs declare",
        {200: OutputsJson},
        query={"dag": (str, "only this DAG's")},
    )
    async def outputs() -> ResponseReturnValue:
        wanted = request.args.get("dag") or None
        return {
            "outputs": [
                {"dag_name": dag.name, "name": out.name, "type": out.type, "location": out.location}
                for dag in sorted(served.dags.values(), key=lambda dag: dag.name)
                if wanted is None or dag.name == wanted
                for out in dag.outputs
            ]
        }

    @routes.get(
        "/api/runs/<run_id>/logs",
        "The run's logs as Server-Sent Events: `log` per line, then `complete`",
        {200: str, 400: ErrorJson, 404: ErrorJson},
        query=LINES_QUERY,
        media="text/event-stream",
    )
    async def run_logs(run_id: str) -> ResponseReturnValue:
        tail = _whole(request.args.get("lines"), 0, "lines")
        record = await _find_run(run_id)
        if record is None:
            return error(404, "run not found")
        return _event_stream(record.run_id, tail)

    @routes.get(
        "/api/runs/<run_id>/tasks/<task>/log",
        "A task's whole log (Range: bytes=N- for what follows byte N)",
        {200: str, 206: str, 404: ErrorJson},
        media="text/plain",
    )
    async def task_log(run_id: str, task: str) -> ResponseReturnValue:
        paths = run_paths(handle.runs_dir, run_id)
        if paths is None or not _plain_name(task):
            return error(404, "task log not found")
        path = paths.log(task)
        if await trio.Path(path).is_file():
            # Range requests (`bytes=N-`) answer 206 with that part: a client follows a log by
            # asking for what it has not seen.
            response = await send_file(path, mimetype="text/plain", conditional=True)
        else:
            try:  # archived by retention: served whole, as it was written
                whole = await trio.to_thread.run_sync(read_log, path)
            except FileNotFoundError:
                return error(404, "task log not found")
            response = Response(whole, mimetype="text/plain")
        response.timeout = None
        return response

    @app.websocket("/api/runs/<run_id>/stream")
    async def stream(run_id: str) -> ResponseReturnValue | None:
        record = await _find_run(run_id)
        paths = run_paths(handle.runs_dir, run_id)
        if record is None or paths is None:
            return error(404, "run not found")
        await websocket.accept()
        ended = None
        async with contextlib.aclosing(feeds.follow(paths)) as batches:
            async for batch in batches:
                for message in batch.websocket:
                    await websocket.send(message)
                if batch.ended:
                    assert batch.record is not None
                    ended = batch.record.state
        if ended is None:  # pit serve is stopping, or this client fell too far behind
            await websocket.close(1001, "the stream ended; follow again")
        else:
            await websocket.send(json.dumps({"event": "complete", "data": {"status": ended.value}}))
            await websocket.close(1000)
        return None

    @routes.get(
        "/api/dags/<name>/logs",
        "The logs of the DAG's active run, else its latest, as Server-Sent Events",
        {200: str, 400: ErrorJson, 404: ErrorJson},
        query=LINES_QUERY,
        media="text/event-stream",
    )
    async def dag_logs(name: str) -> ResponseReturnValue:
        tail = _whole(request.args.get("lines"), 0, "lines")
        if name not in served.dags:
            return error(404, "dag not found")

        def active_or_latest(runs: RunStore) -> list[RunRecord]:
            active = runs.runs(dag=name, state=RunState.RUNNING, limit=1, tasks=False)
            return active or runs.runs(dag=name, limit=1, tasks=False)

        found = await store.read(active_or_latest)
        if not found:
            return error(404, "no runs found for dag")
        return _event_stream(found[0].run_id, tail)

    @routes.post(
        "/api/dags/<name>/runs",
        "Start a run of the DAG now (admitted as a webhook's); with an Idempotency-Key header, "
        "a repeat within 24 h answers the first run (200) and starts none",
        {200: RunStartedJson, 202: RunStartedJson, 400: ErrorJson, 404: ErrorJson, 409: ErrorJson},
        body=RUN_REQUEST,
    )
    async def trigger(name: str) -> ResponseReturnValue:
        if handle.stopping.is_set():
            return error(503, "pit is shutting down; it takes no new runs")
        asked = await _json_body(frozenset({"params"}))
        params = asked.get("params", {})
        if not isinstance(params, dict):
            return error(400, "params must be a JSON object of the DAG's params")
        return await start_run(
            handle.inbox,
            keys,
            name,
            trigger="api",
            params=params,
            key=request.headers.get(IDEMPOTENCY_HEADER),
            unknown="dag not found",
        )

    async def _json_body(allowed: frozenset[str]) -> dict[str, Any]:
        """The request's JSON object, with no key but `allowed` (an empty body is `{}`);
        anything else is a 400."""
        body = await request.get_data()
        if not body.strip():
            return {}
        try:
            asked = json.loads(body)
        except ValueError:  # not JSON, or not UTF-8
            asked = None
        if not isinstance(asked, dict):
            raise BadRequest("the body must be a JSON object (or empty)")
        if unknown := sorted(set(asked) - allowed):
            raise BadRequest(
                f"unknown key {unknown[0]!r}; the body takes {', '.join(sorted(allowed))}"
            )
        return asked

    @routes.post(
        "/api/runs/<run_id>/rerun",
        "Re-run a run: from its failure, or the tasks named and what depends on them",
        {202: RunStartedJson, 400: ErrorJson, 404: ErrorJson, 409: ErrorJson},
        body=RERUN_REQUEST,
    )
    async def rerun(run_id: str) -> ResponseReturnValue:
        if handle.stopping.is_set():
            return error(503, "pit is shutting down; it takes no new runs")
        asked = await _json_body(frozenset({"from", "tasks", "latest_code"}))
        tasks = asked.get("tasks")
        if tasks is not None and not (
            isinstance(tasks, list) and tasks and all(isinstance(t, str) for t in tasks)
        ):
            return error(400, '"tasks" must be a list of task names')
        if asked.get("from", "failed") != "failed":
            return error(400, 'send {"from": "failed"} or {"tasks": [...]}')
        if not isinstance(asked.get("latest_code", False), bool):
            return error(400, '"latest_code" must be true or false')
        old = await _find_run(run_id)
        if old is None:
            return error(404, "run not found")
        again = Rerun(
            of=run_id,
            tasks=tuple(tasks) if tasks else None,
            latest_code=asked.get("latest_code", False),
        )
        answer = await request_run(handle.inbox, old.dag, trigger="api", rerun=again)
        return run_answer(old.dag, answer, unknown="dag not found")

    @routes.post(
        "/api/dags/<name>/pause",
        "Pause the DAG: its triggers start nothing",
        {200: PausedJson, 404: ErrorJson},
    )
    async def pause(name: str) -> ResponseReturnValue:
        return await _pause(name, pause=True)

    @routes.post(
        "/api/dags/<name>/resume",
        "Resume the DAG's triggers",
        {200: PausedJson, 404: ErrorJson},
    )
    async def resume(name: str) -> ResponseReturnValue:
        return await _pause(name, pause=False)

    async def _pause(name: str, *, pause: bool) -> ResponseReturnValue:
        reply_send, reply = trio.open_memory_channel[bool](1)
        asked = PauseRequested(dag=name, pause=pause, by=_caller(), reply=reply_send)
        try:
            handle.inbox.send_nowait(asked)
        except trio.WouldBlock:
            return error(503, "too many requests waiting; try again", {"Retry-After": "1"})
        async with reply:
            if not await reply.receive():
                return error(404, "dag not found")
        return {"dag": name, "paused": pause}

    @routes.post(
        "/api/runs/<run_id>/cancel",
        "Cancel a run of this pit serve",
        {200: CancelJson, 202: CancelJson, 404: ErrorJson, 409: ErrorJson},
    )
    async def cancel(run_id: str) -> ResponseReturnValue:
        reply_send, reply = trio.open_memory_channel[CancelAnswer](1)
        asked = CancelRequested(run_id=run_id, by=_caller(), reply=reply_send)
        try:
            handle.inbox.send_nowait(asked)
        except trio.WouldBlock:
            return error(503, "too many requests waiting; try again", {"Retry-After": "1"})
        async with reply:
            answer = await reply.receive()
        if answer == "cancelling":
            return {"run_id": run_id, "status": "cancelling"}, 202
        if answer == "cancelled":
            return {"run_id": run_id, "status": "cancelled"}
        record = await _find_run(run_id)
        if record is None:
            return error(404, "run not found")
        if record.state.terminal:
            return error(409, f"run {run_id} has ended ({record.state.value})")
        return error(
            409,
            f"run {run_id} is not one of this pit serve's runs: cancel it where it runs "
            "(`pit cancel` on its machine)",
        )

    @app.get("/api/openapi.json")
    async def openapi() -> ResponseReturnValue:
        return routes.document(
            title="pit serve",
            version=VERSION,
            errors={401: ErrorJson, 403: ErrorJson, 503: ErrorJson},
        )

    def _caller() -> str:
        return f"the API ({request.remote_addr})"

    async def _find_run(run_id: str) -> RunRecord | None:
        """The run as its run.json has it now, else as the store does (its folder gone)."""
        paths = run_paths(handle.runs_dir, run_id)
        if paths is None:
            return None
        on_disk = await trio.to_thread.run_sync(_on_disk, paths)
        if on_disk is not None:
            return on_disk
        return await store.read(lambda runs: runs.get(run_id))

    def _on_disk(paths: RunPaths) -> RunRecord | None:
        record = read_record(paths)
        if record is None and paths.root.is_dir():  # accepted, its record not written yet
            return RunRecord(run_id=paths.run_id, dag=dag_of(paths.run_id), trigger="")
        return record

    def _event_stream(run_id: str, tail: int) -> Response:
        paths = run_paths(handle.runs_dir, run_id)
        assert paths is not None  # found by its id just now
        events = _server_sent(feeds.follow(paths, tail=tail or None))
        response = Response(events, mimetype="text/event-stream")
        response.headers["Cache-Control"] = "no-cache"
        response.timeout = None  # Quart's 60 s response timeout would cut a live stream
        return response


async def _server_sent(batches: AsyncGenerator[Batch, None]) -> AsyncIterator[bytes]:
    """The original Pit's log stream: an event `log` per line, `complete` once the run has
    ended (then the stream ends)."""
    ended = None
    async with contextlib.aclosing(batches):
        async for batch in batches:
            if batch.lines:
                yield batch.server_sent
            if batch.ended:
                assert batch.record is not None
                ended = batch.record.state
    if ended is not None:  # else pit serve is stopping: the stream just ends
        yield _sse("complete", {"status": ended.value})


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


_STATES = {state.value for state in RunState}


def _dag_summary(dag: DagSpec, now: dt.datetime, *, paused: bool) -> DagJson:
    return {
        "name": dag.name,
        "schedule": dag.schedule or "",
        "schedule_text": describe(dag.schedule) if dag.schedule else "",
        "next_run": rfc3339(_next_fire(dag, now)),
        "timezone": dag.timezone,
        "task_count": len(dag.tasks),
        "triggers": [
            kind
            for kind, on in (
                ("cron", dag.schedule),
                ("ftp", dag.ftp_watch),
                ("dir", dag.dir_watch),
                ("webhook", dag.webhook),
                ("after", dag.after),
            )
            if on
        ],
        "paused": paused,
        "params": [
            {
                "name": p.name,
                "type": p.type.value,
                "default": p.default,
                "choices": list(p.choices),
                "description": p.description,
            }
            for p in dag.params
        ],
    }


def _next_fire(dag: DagSpec, now: dt.datetime) -> dt.datetime | None:
    """When the DAG's schedule fires next (as its cron trigger reckons it); None without one."""
    if not dag.schedule:
        return None
    try:
        tz = zone_of(dag.timezone)
        return next_fire(dag.schedule, now, tz)
    except (ValueError, OSError, KeyError):  # validation keeps these out: show no time
        return None


def _go_duration(seconds: float | None) -> str:
    """A duration as the original Pit (Go's `Duration.String`) wrote it: `1h30m0s`, `0s`."""
    if not seconds:
        return "0s"
    whole, fraction = divmod(seconds, 1)
    hours, rest = divmod(int(whole), 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs + fraction:g}s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return text


def _whole(text: str | None, default: int, name: str) -> int:
    """A query parameter that must be a whole number of at least 1 (absent: `default`; given
    empty, as `?limit=`, it is no number: 400, as the OpenAPI document says)."""
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 9 and int(text) >= 1):
        raise BadRequest(f"{name} must be a whole number from 1")
    return int(text)


def _plain_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\0" not in name and not name.startswith(".")


def _guarded(path: str) -> bool:
    """Whether a path is behind the API's tokens (everything of the API but its health)."""
    return (path.startswith("/api/") or path == "/metrics") and path != "/api/health"
