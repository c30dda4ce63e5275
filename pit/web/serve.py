"""Serve the web app with hypercorn inside the caller's nursery, stopped by an event.

In the supervisor::

    port = await nursery.start(
        functools.partial(serve_app, app, host=host, port=port, shutdown=stop_web)
    )
    ...
    stop_web.set()  # not a cancel: cancelling skips the app's after_serving (STYLE 16)
"""

from __future__ import annotations

import errno
import functools
import logging
import socket

import hypercorn.trio
import trio
from hypercorn.config import Config
from quart_trio import QuartTrio

from pit.errors import PitError

GRACEFUL_TIMEOUT = 1.0
"""Seconds requests in flight get to finish once shutdown begins; then they are cancelled. Short:
a webhook answer takes milliseconds, and whatever else holds a connection open (a stream, or an
idle kept-alive connection if pit/web/asgi.py's fix stops working: DECISIONS.md, slow shutdown)
holds shutdown for this whole time."""


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
    Raises `WebError` if it cannot listen. Hypercorn logs to the `pit.web` logger, never straight
    to stderr (the app itself logs each request to `pit.web.access`).
    """
    config = _config()
    # In a thread: a host name may need a DNS lookup, which would hold up every actor.
    listener = await trio.to_thread.run_sync(
        functools.partial(_listen, host, port, backlog=config.backlog)
    )
    bound_port: int = listener.getsockname()[1]
    # Hypercorn takes the socket over by its descriptor and closes it when it stops (or leaks it
    # if the app's startup fails before that: pit has no startup hooks). Binding here rather
    # than in hypercorn gives a plain OSError to explain, and hypercorn leaks the socket of a
    # failed bind.
    config.bind = [f"fd://{listener.detach()}"]
    async with trio.open_nursery() as nursery:
        await nursery.start(
            functools.partial(hypercorn.trio.serve, app, config, shutdown_trigger=shutdown.wait)
        )
        task_status.started(bound_port)


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
