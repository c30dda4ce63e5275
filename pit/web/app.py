"""The web app: `POST /webhook/<dag>` starts a run of a DAG.

`create_app(handle)` builds it on a `WebHandle` (`pit.messages.web`): the webhook tokens and the
stopping event the supervisor keeps current, and its inbox, where a webhook sends `RunRequested`
as any trigger does. The app holds nothing else of the supervisor. Every answer is JSON:
`{"run_id": ..., "dag": ...}` on 202, `{"error": ...}` otherwise.

| status | when |
|---|---|
| 202 | the run is queued (`RunAccepted`); the request does not wait for the run to start |
| 401 | no `Authorization: Bearer <token>` header, or the wrong token |
| 404 | no such DAG, or the DAG has no `[dag.webhook]` |
| 405 | a method other than POST |
| 409 | `overlap = "skip"` and a run of the DAG is active |
| 408 | the body took over `BODY_TIMEOUT` seconds to arrive |
| 413 | a body over `MAX_BODY` bytes |
| 503 | pit is stopping, its request queue is full, or it cannot read the token (`Retry-After`) |

Keep-alive trap (seen with hypercorn 0.18 and quart-trio 0.12): answering before the request
body has been read can stall the next request on the same connection. Two defences: every
request's body is read first, in `before_request` (bounded: see `_read_body`), before any route
or error handler answers; and `pit.web.asgi.HTTPConnection` removes the cause, so that a
connection hypercorn does close (a 413 past `DRAIN_LIMIT`, a 408) is really closed.
"""

from __future__ import annotations

import json
import logging
import time

import trio
from quart import Response, g, request
from quart.typing import ResponseReturnValue
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from pit.messages.web import WebHandle
from pit.web.access import Sessions
from pit.web.api import add_api
from pit.web.asgi import HTTPConnection
from pit.web.dashboard import add_dashboard
from pit.web.idempotency import FILE as IDEMPOTENCY_FILE
from pit.web.idempotency import HEADER as IDEMPOTENCY_HEADER
from pit.web.idempotency import IdempotencyKeys
from pit.web.responses import (
    bearer_token,
    error,
    same_token,
    start_run,
    unauthorized,
)

log = logging.getLogger("pit.web")
access_log = logging.getLogger("pit.web.access")

MAX_BODY = 1024 * 1024
"""Largest request body accepted (1 MiB); a larger one is answered 413."""

DRAIN_LIMIT = 16 * MAX_BODY
"""Up to this many bytes of an oversized body are read and thrown away, so that the 413 leaves the
connection usable. Past it the 413 closes the connection instead of reading on."""

BODY_TIMEOUT = 30.0
"""Seconds a client may take to send its body before it is answered 408."""

TOKEN_RETRY_AFTER = 60
"""Seconds a 503 for a token pit cannot read tells the caller to wait: a person must fix it."""


def create_app(handle: WebHandle) -> QuartTrio:
    """The web app, answering from the supervisor's `handle`. Serve it with
    `pit.web.serve.serve_app`."""
    # No static route of Quart's own: the dashboard serves its assets (pit/web/dashboard.py).
    app = QuartTrio("pit.web", static_folder=None)
    app.asgi_http_class = HTTPConnection  # see pit/web/asgi.py: hypercorn's bookkeeping
    # `_read_body` enforces the size limit itself: Quart's own check answers before the body is
    # read (the keep-alive trap) and cannot drain what it refuses.
    app.config["MAX_CONTENT_LENGTH"] = None
    # Unhandled errors are logged by `unexpected` below; this keeps Quart from ever giving its
    # logger a stderr handler (and a queue-listener thread) of its own.
    app.logger = log
    keys = IdempotencyKeys.load(handle.store.with_name(IDEMPOTENCY_FILE), handle.clock)

    @app.before_request
    async def read_body() -> ResponseReturnValue | None:
        g.started = time.perf_counter()
        return await _read_body()

    @app.after_request
    async def log_access(response: Response) -> Response:
        # Client, request line, status, bytes, seconds; never a header (`Authorization` holds a
        # token). Written here rather than by hypercorn, whose access log costs several times
        # more per request (it gathers every header first).
        access_log.info(
            '%s "%s %s %s" %s %s %.6fs',
            request.remote_addr,
            request.method,
            request.path,
            request.http_version,
            response.status_code,
            response.content_length,
            time.perf_counter() - g.get("started", time.perf_counter()),
        )
        return response

    @app.post("/webhook/<dag>")
    async def webhook(dag: str) -> ResponseReturnValue:
        if handle.stopping.is_set():
            return error(503, "pit is shutting down; it takes no new runs")
        tokens = handle.served.webhook_tokens
        if dag not in tokens:
            return error(404, f"no DAG {dag!r} with a webhook ([dag.webhook] in its pit.toml)")
        token = tokens[dag]
        if token is None:
            return error(
                503,
                "webhook token not available: pit has no secrets file, or it lacks the "
                "DAG's token_secret (see pit serve's log)",
                {"Retry-After": str(TOKEN_RETRY_AFTER)},
            )
        presented = bearer_token(request.headers.get("Authorization"))
        if presented is None:
            return unauthorized("send the DAG's token as 'Authorization: Bearer <token>'")
        if not same_token(presented, token):
            log.warning("webhook %s: wrong token from %s", dag, request.remote_addr)
            return unauthorized("wrong token")
        params = _webhook_params(await request.get_data())
        if params is None:
            return error(400, 'params must be a JSON object: {"params": {"name": value}}')
        return await start_run(
            handle.inbox,
            keys,
            dag,
            trigger="webhook",
            params=params,
            key=request.headers.get(IDEMPOTENCY_HEADER),
        )

    sessions = Sessions()
    add_api(app, handle, sessions, keys)
    add_dashboard(app, handle, sessions)

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> ResponseReturnValue:
        headers = {}
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            headers["Allow"] = ", ".join(exc.valid_methods)
        return error(exc.code or 500, exc.description or exc.name, headers)

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> ResponseReturnValue:
        log.error("%s %s failed", request.method, request.path, exc_info=exc)
        return error(500, "internal error in pit; see its log")

    return app


async def _read_body() -> ResponseReturnValue | None:
    """Read the whole request body before anything answers; None when it is within `MAX_BODY`.

    An oversized body is read to its end and dropped (up to `DRAIN_LIMIT`), then answered 413
    on a connection that stays usable. The body read is put back, so `request.get_data()` and
    `request.get_json()` work in the routes as usual.
    """
    declared = request.content_length
    if declared is not None and declared > DRAIN_LIMIT:
        return _too_large(close=True)
    kept: list[bytes] = []
    size = 0
    with trio.move_on_after(BODY_TIMEOUT) as timer:
        async for chunk in request.body:
            size += len(chunk)
            if size > DRAIN_LIMIT:
                return _too_large(close=True)
            if size <= MAX_BODY:
                kept.append(chunk)
    if timer.cancelled_caught:
        return error(408, f"the body took over {BODY_TIMEOUT:.0f}s", {"Connection": "close"})
    if size > MAX_BODY:
        return _too_large(close=False)
    body = request.body_class(None, None)
    body.set_result(b"".join(kept))
    request.body = body
    return None


def _too_large(*, close: bool) -> ResponseReturnValue:
    headers = {"Connection": "close"} if close else {}
    return error(413, f"the body is over {MAX_BODY // 1024} KiB", headers)


def _webhook_params(body: str | bytes) -> dict[str, object] | None:
    """The run's params a webhook's body gives (`{"params": {...}}`); none from a body that is
    not a JSON object (a sender's own payload); None when its `params` is not an object."""
    try:
        payload = json.loads(body) if body.strip() else {}
    except ValueError:
        return {}
    if not isinstance(payload, dict):
        return {}
    params = payload.get("params", {})
    return params if isinstance(params, dict) else None
