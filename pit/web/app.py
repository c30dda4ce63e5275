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

import hmac
import logging
import time
from typing import Any, assert_never

import trio
from quart import Response, g, request
from quart.typing import ResponseReturnValue
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from pit.messages.trigger import RunRequested, SupervisorInbox
from pit.messages.web import WebHandle
from pit.messages.webhook import RejectReason, RunAccepted, RunRejected, RunRequestAnswer
from pit.web.asgi import HTTPConnection

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

BUSY_RETRY_AFTER = 1
"""Seconds a 503 for a full request queue tells the caller to wait (`Retry-After`)."""

_REJECTED_STATUS: dict[RejectReason, int] = {
    "overlap": 409,
    "busy": 503,
    "stopping": 503,
    "unknown": 404,
}


def create_app(handle: WebHandle) -> QuartTrio:
    """The web app, answering from the supervisor's `handle`. Serve it with
    `pit.web.serve.serve_app`."""
    app = QuartTrio("pit.web")
    app.asgi_http_class = HTTPConnection  # see pit/web/asgi.py: hypercorn's bookkeeping
    # `_read_body` enforces the size limit itself: Quart's own check answers before the body is
    # read (the keep-alive trap) and cannot drain what it refuses.
    app.config["MAX_CONTENT_LENGTH"] = None
    # Unhandled errors are logged by `unexpected` below; this keeps Quart from ever giving its
    # logger a stderr handler (and a queue-listener thread) of its own.
    app.logger = log

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
            return _error(503, "pit is shutting down; it takes no new runs")
        tokens = handle.tokens.by_dag
        if dag not in tokens:
            return _error(404, f"no DAG {dag!r} with a webhook ([dag.webhook] in its pit.toml)")
        token = tokens[dag]
        if token is None:
            return _error(
                503,
                "webhook token not available: pit has no secrets file, or it lacks the "
                "DAG's token_secret (see pit serve's log)",
                {"Retry-After": str(TOKEN_RETRY_AFTER)},
            )
        presented = _bearer_token(request.headers.get("Authorization"))
        if presented is None:
            return _unauthorized("send the DAG's token as 'Authorization: Bearer <token>'")
        if not _same_token(presented, token):
            log.warning("webhook %s: wrong token from %s", dag, request.remote_addr)
            return _unauthorized("wrong token")
        answer = await request_run(handle.inbox, dag)
        match answer:
            case RunAccepted(run_id=run_id):
                return {"run_id": run_id, "dag": dag}, 202
            case RunRejected(reason=reason, message=message):
                headers = {"Retry-After": str(BUSY_RETRY_AFTER)} if reason == "busy" else {}
                return _error(_REJECTED_STATUS[reason], message, headers)
            case _:
                assert_never(answer)

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> ResponseReturnValue:
        headers = {}
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            headers["Allow"] = ", ".join(error.valid_methods)
        return _error(error.code or 500, error.description or error.name, headers)

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> ResponseReturnValue:
        log.error("%s %s failed", request.method, request.path, exc_info=error)
        return _error(500, "internal error in pit; see its log")

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
        return _error(408, f"the body took over {BODY_TIMEOUT:.0f}s", {"Connection": "close"})
    if size > MAX_BODY:
        return _too_large(close=False)
    body = request.body_class(None, None)
    body.set_result(b"".join(kept))
    request.body = body
    return None


async def request_run(inbox: trio.MemorySendChannel[SupervisorInbox], dag: str) -> RunRequestAnswer:
    """Ask the supervisor for a run of `dag`, as a trigger does; it answers at once, without
    waiting for the run to start. A full inbox is a busy answer, never a wait."""
    reply_send, reply = trio.open_memory_channel[RunRequestAnswer](1)
    try:
        inbox.send_nowait(RunRequested(dag=dag, trigger="webhook", reply=reply_send))
    except trio.WouldBlock:
        return RunRejected(reason="busy", message="too many requests waiting; try again")
    async with reply:
        return await reply.receive()


def _bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme in any case); None when
    the header is missing, of another scheme, or has no token."""
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def _same_token(presented: str, expected: str) -> bool:
    """Compare in constant time. Header values reach us decoded as latin-1 (the raw bytes), the
    expected token is text: compare the bytes a client sends for it (UTF-8)."""
    if not expected:
        return False  # an empty token is a configuration slip, never a match
    return hmac.compare_digest(presented.encode("latin-1"), expected.encode("utf-8"))


def _error(
    status: int, message: str, headers: dict[str, str] | None = None
) -> tuple[dict[str, Any], int, dict[str, str]]:
    return {"error": message}, status, headers or {}


def _unauthorized(message: str) -> ResponseReturnValue:
    return _error(401, message, {"WWW-Authenticate": 'Bearer realm="pit"'})


def _too_large(*, close: bool) -> ResponseReturnValue:
    headers = {"Connection": "close"} if close else {}
    return _error(413, f"the body is over {MAX_BODY // 1024} KiB", headers)
