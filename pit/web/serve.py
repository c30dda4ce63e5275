"""Serve the web app with hypercorn inside the caller's nursery, stopped by an event.

In the supervisor::

    port = await nursery.start(
        functools.partial(serve_app, app, host=host, port=port, shutdown=stop_web)
    )
    ...
    stop_web.set()  # not a cancel: cancelling skips the app's after_serving (STYLE 16)

`serve_app` is hypercorn's `hypercorn.trio.run.worker_serve` cut down to one plain-HTTP listener,
with each connection served by `_serve_connection`, which differs from hypercorn's in two ways:

- Whatever one connection raises stays in that connection: it is logged and the connection
  closed. In `worker_serve` it ends the whole server (and with it `pit serve` and its active
  runs), and hypercorn lets some out: a WebSocket upgrade followed at once by a frame makes h11
  raise `LocalProtocolError` there, as do other byte sequences (tests/fuzz/test_web_fuzz.py).
- A connection that is over (the client closed it, a read or write failed, the server closed
  it) is let go within `CLOSED_GRACE`, and one that moves no byte for `STALL_LIMIT` is closed;
  hypercorn keeps some until their keep-alive timer ends, and some until shutdown
  (`_WatchedStream`).
"""

from __future__ import annotations

import errno
import functools
import logging
import socket

import trio
from hypercorn.config import Config
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, ConnectionState, LifespanState
from hypercorn.utils import repr_socket_addr, wrap_app
from quart_trio import QuartTrio

from pit.errors import PitError, leaves
from pit.web.app import BODY_TIMEOUT

log = logging.getLogger("pit.web")

GRACEFUL_TIMEOUT = 1.0
"""Seconds requests in flight get to finish once shutdown begins; then they are cancelled. Short:
a webhook answer takes milliseconds, and whatever else holds a connection open (a stream, or an
idle kept-alive connection if pit/web/asgi.py's fix stops working: its slow shutdown)
holds shutdown for this whole time."""

CLOSED_GRACE = 0.5
"""Seconds what a connection still runs may take once the connection is over (the client has
closed its side, or a read or write failed, or the server closed it); then it is cancelled.
A request in flight is cancelled at the client's end of stream anyway (hypercorn tells the app
the client has gone). See `_WatchedStream`."""

STALL_LIMIT = 2 * BODY_TIMEOUT
"""Seconds a connection may go without reading or writing a byte; then it is closed. Longer
than anything pit waits for on a live connection (a request body: `BODY_TIMEOUT`; the next
request on a kept-alive connection: hypercorn's 5 s keep-alive timer), so only a connection
hypercorn no longer serves reaches it (see `_WatchedStream`). A streaming route, should pit
get one, must send something more often than this."""


class WebError(PitError):
    """Raised by `serve_app` when the web server cannot listen on its host and port (the port is
    taken, the host is not an address of this machine); the message names both and the fix."""


async def serve_app(
    app: QuartTrio,
    *,
    host: str,
    port: int,
    shutdown: trio.Event,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` on `host`:`port` until `shutdown` is set, then let requests in flight finish
    (at most `GRACEFUL_TIMEOUT`) and return.

    Reports the bound port through `task_status` once listening (so `port=0` picks a free one).
    Raises `WebError` if it cannot listen; nothing a client sends ends it. Hypercorn logs to the
    `pit.web` logger, never straight to stderr (the app itself logs each request to
    `pit.web.access`).
    """
    config = _config()
    # In a thread: a host name may need a DNS lookup, which would hold up every actor.
    listening = await trio.to_thread.run_sync(
        functools.partial(_listen, host, port, backlog=config.backlog)
    )
    bound = repr_socket_addr(listening.family, listening.getsockname())
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(listening))
    asgi_app = wrap_app(app, config.wsgi_max_body_size, "asgi")
    lifespan_state: LifespanState = {}
    lifespan = Lifespan(asgi_app, config, lifespan_state)
    async with listener, trio.open_nursery() as lifespan_nursery:  # the listener: closed at the end
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()  # the app's before_serving
        context = WorkerContext(max_requests=None)
        handler = functools.partial(
            _serve_connection, asgi_app, config, context, ConnectionState(lifespan_state.copy())
        )
        async with trio.open_nursery() as connections:
            async with trio.open_nursery() as accepting:
                accepting.start_soon(
                    functools.partial(
                        trio.serve_listeners, handler, [listener], handler_nursery=connections
                    )
                )
                log.info("Running on http://%s (CTRL + C to quit)", bound)
                task_status.started(listening.getsockname()[1])
                await shutdown.wait()
                accepting.cancel_scope.cancel()  # no new connections; closes the listener
            # Idle kept-alive connections close at once; requests in flight get the grace.
            await context.terminated.set()
            connections.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
        await lifespan.wait_for_shutdown()  # the app's after_serving
        lifespan_nursery.cancel_scope.cancel()


async def _serve_connection(
    app: AppWrapper,
    config: Config,
    context: WorkerContext,
    state: ConnectionState,
    stream: trio.SocketStream,
) -> None:
    """Serve one accepted connection with hypercorn's `TCPServer`; whatever it raises stays here.

    An `Exception` (hypercorn's own, or h11's, h2's or wsproto's, on bytes they did not expect)
    is logged to `pit.web` (one warning line, the traceback at debug) and the connection closed
    (`trio.serve_listeners` closes the stream after this returns). `trio.Cancelled` and
    `KeyboardInterrupt` pass through untouched (STYLE 10): `except*` leaves them out.
    """
    peer = _peer(stream)
    try:
        with trio.CancelScope() as lifetime:
            watched = _WatchedStream(stream, lifetime)
            # TCPServer is typed for a TLS stream; without TLS it uses what `_WatchedStream` has.
            await TCPServer(app, config, context, state, watched).run()  # type: ignore[arg-type]
    except* Exception as group:
        errors = "; ".join(f"{type(e).__name__}: {e}" for e in leaves(group))
        log.warning("connection from %s closed after an error in the HTTP server: %s", peer, errors)
        log.debug("the HTTP server's error on the connection from %s", peer, exc_info=group)
    if lifetime.cancelled_caught and watched.stalled:
        log.warning("connection from %s closed: no byte in or out for %gs", peer, STALL_LIMIT)


class _WatchedStream:
    """A connection's stream as hypercorn's `TCPServer` uses it, which bounds the connection's
    `lifetime`: it ends `CLOSED_GRACE` seconds after the connection is over (the client's end of
    stream, an error reading or writing, or the server closing it), or `STALL_LIMIT` seconds
    after the last byte read or written.

    hypercorn alone keeps a connection whose client has closed until its keep-alive timer ends
    (5 s), and can keep one forever: a task of it waits for an event that can no longer come
    (pipelined requests from a client that goes away before its answers; an h2c upgrade
    followed by bytes h2 rejects), or its reading task does (an h2c upgrade of a CONNECT
    request: `H2Protocol.initiate` waits for a sending task it starts only after that wait).

    It has no `do_handshake`: that is how `TCPServer.run` tells plain TCP from TLS.
    """

    def __init__(self, stream: trio.SocketStream, lifetime: trio.CancelScope) -> None:
        self._stream = stream
        self._lifetime = lifetime
        self._stall_deadline = 0.0
        """When the connection counts as stalled if it has moved no byte by then."""
        self._ended_at: float | None = None
        """When the connection was over (its lifetime then ends `CLOSED_GRACE` later)."""
        self._moved()

    @property
    def stalled(self) -> bool:
        """True if the connection reached `STALL_LIMIT` before it was over."""
        return self._ended_at is None or self._ended_at >= self._stall_deadline

    @property
    def socket(self) -> trio.socket.SocketType:
        return self._stream.socket

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        try:
            data = await self._stream.receive_some(max_bytes)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._end()
            raise
        if data:
            self._moved()
        else:
            self._end()
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._end()
            raise
        self._moved()

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        self._end()
        await self._stream.aclose()

    def _moved(self) -> None:
        if self._ended_at is None:
            self._stall_deadline = trio.current_time() + STALL_LIMIT
            self._lifetime.deadline = self._stall_deadline

    def _end(self) -> None:
        if self._ended_at is None:
            self._ended_at = trio.current_time()
            deadline = self._ended_at + CLOSED_GRACE
            self._lifetime.deadline = min(self._lifetime.deadline, deadline)


def _peer(stream: trio.SocketStream) -> str:
    """The client's address, for the log; the client may already be gone."""
    try:
        return repr_socket_addr(stream.socket.family, stream.socket.getpeername())
    except OSError:
        return "a client already gone"


def _config() -> Config:
    config = Config()
    config.graceful_timeout = GRACEFUL_TIMEOUT
    config.errorlog = logging.getLogger("pit.web")
    config.accesslog = None  # the app logs each request (pit.web.access), at less cost
    return config


def _listen(host: str, port: int, *, backlog: int) -> socket.socket:
    """A TCP socket listening on `host`:`port`; `WebError` if there cannot be one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=backlog)
    except OSError as error:
        raise WebError(_cannot_listen(host, port, error)) from error


def _cannot_listen(host: str, port: int, error: OSError) -> str:
    where = f"cannot listen on {host}:{port}"
    if error.errno == errno.EADDRINUSE:
        return (
            f"{where}: the port is in use (another `pit serve`?); stop that program or choose "
            "another port with --port"
        )
    if error.errno == errno.EACCES:
        return f"{where}: permission denied (ports below 1024 need privileges); use --port"
    # socket.create_server appends "(while attempting to bind on address ...)": we said where.
    reason = (error.strerror or str(error)).partition(" (while attempting")[0]
    return f"{where}: {reason}; check --host (an address of this machine) and --port"
