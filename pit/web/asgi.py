"""quart-trio's ASGI HTTP connection, minus the cancel that strands hypercorn's connections.

hypercorn (0.18, trio worker) does its per-connection bookkeeping inside the app's last `send()`
of a response: it tells the app `http.disconnect`, then either recycles the connection for the
next request and starts its keep-alive idle timer, or closes the socket. quart-trio (0.12)
cancels the whole request as soon as its receive loop sees that `http.disconnect`, so the
bookkeeping still running in that `send()` is cancelled half-way:

- a connection that should close (an early answer, a `Connection: close`) is left open and no
  longer served: the client's next request on it stalls (the keep-alive stall);
- a recycled connection never starts its idle timer, so an idle client holds shutdown for the
  whole graceful timeout (the slow shutdown).

`HTTPConnection` keeps quart-trio's cancel for a client that goes away while the app works or
streams, and skips it once the app has handed over the last part of its response.
"""

from __future__ import annotations

import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, ASGISendEvent
from quart.asgi import ASGIHTTPConnection
from quart.wrappers import Request
from quart_trio.asgi import TrioASGIHTTPConnection


class HTTPConnection(TrioASGIHTTPConnection):
    """One HTTP request of quart-trio; set as `app.asgi_http_class`."""

    _response_sent = False
    """Set when the app hands hypercorn the last body message of its response: a disconnect
    after that is hypercorn's own bookkeeping, not a client gone away."""

    async def handle_messages(  # type: ignore[override]  # quart-trio's own signature
        self, nursery: trio.Nursery, request: Request, receive: ASGIReceiveCallable
    ) -> None:
        await ASGIHTTPConnection.handle_messages(self, request, receive)  # to http.disconnect
        if not self._response_sent:
            nursery.cancel_scope.cancel()

    async def handle_request(  # type: ignore[override]  # quart-trio's own signature
        self, nursery: trio.Nursery, request: Request, send: ASGISendCallable
    ) -> None:
        async def send_noting_the_end(message: ASGISendEvent) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self._response_sent = True
            await send(message)

        await super().handle_request(nursery, request, send_noting_the_end)
