"""What one connection may do to the listener: raw bytes against the real `serve_app`.

The reliability issue: a WebSocket upgrade followed at once by a frame made hypercorn raise
h11's `LocalProtocolError` out of the connection's task and end `pit serve`. Now whatever one
connection raises stays in that connection (`pit.web.serve._serve_connection`), and a
connection that is over is let go (`_WatchedStream`). tests/fuzz/test_web_fuzz.py tries many
more byte streams.
"""

from __future__ import annotations

import json
import logging
from unittest import mock

import pytest
import trio

import pit.web.serve
from pit.web.serve import CLOSED_GRACE, _serve_connection

from .conftest import HANG_GUARD, Served, serving
from .fakebackend import FakeBackend
from .rawhttp import (
    H2C,
    WEBHOOK,
    WEBSOCKET,
    Case,
    read_answers,
    send_case,
    webhook_status,
    ws_frame,
)

pytestmark = pytest.mark.slow


def port_of(served: Served) -> int:
    return int(served.url.rpartition(":")[2])


async def test_a_websocket_upgrade_then_a_frame_leaves_the_server_serving(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's reproduction: the upgrade and a close frame (`\\x88\\x80abcd`) in one read."""
    answer = await send_case(port_of(served), Case((WEBSOCKET + ws_frame(8),)))
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert await webhook_status(port_of(served)) == 202
    (warning,) = [r for r in caplog.records if r.name == "pit.web" and r.levelname == "WARNING"]
    assert warning.getMessage().startswith("connection from 127.0.0.1:")
    assert "closed after an error in the HTTP server: LocalProtocolError" in warning.getMessage()


async def test_a_websocket_upgrade_is_answered_404(served: Served) -> None:
    """pit has no WebSocket routes: the upgrade gets the app's JSON 404, no exception."""
    stream = await trio.open_tcp_stream("127.0.0.1", port_of(served))
    async with stream:
        await stream.send_all(WEBSOCKET)
        with trio.fail_after(HANG_GUARD):
            ((status, body),) = await read_answers(stream, 1)
    assert status == 404
    assert set(json.loads(body)) == {"error"}
    assert await webhook_status(port_of(served)) == 202


async def test_an_h2c_upgrade_is_answered_over_http2(served: Served) -> None:
    """hypercorn takes the upgrade (101) and answers the request over HTTP/2 on stream 1."""
    stream = await trio.open_tcp_stream("127.0.0.1", port_of(served))
    answer = b""
    async with stream:
        await stream.send_all(H2C)
        with trio.fail_after(HANG_GUARD):
            while b'{"error":' not in answer:  # the app's 405 (GET on a POST route), in DATA
                answer += await stream.receive_some()
    assert answer.startswith(b"HTTP/1.1 101 ")
    assert b"upgrade: h2c" in answer.lower()
    assert await webhook_status(port_of(served)) == 202


async def test_pipelined_requests_are_answered_in_order(
    served: Served, backend: FakeBackend
) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port_of(served))
    async with stream:
        await stream.send_all(WEBHOOK * 3)
        with trio.fail_after(HANG_GUARD):
            answers = await read_answers(stream, 3)
    assert [status for status, _ in answers] == [202, 202, 202]
    run_ids = [json.loads(body)["run_id"] for _, body in answers]
    assert run_ids == [f"20240115_143022.{n:03d}_deploy" for n in (1, 2, 3)]
    assert backend.requested == ["deploy"] * 3


async def test_a_client_that_closes_is_let_go_at_once(served: Served) -> None:
    """hypercorn alone holds a closed client's connection for its 5 s keep-alive timer."""
    stream = await trio.open_tcp_stream("127.0.0.1", port_of(served))
    async with stream:
        await stream.send_all(WEBHOOK)
        (status, _), *_ = await read_answers(stream, 1)
        assert status == 202
        await stream.send_eof()
        with trio.fail_after(CLOSED_GRACE + 1.0):
            assert await stream.receive_some() == b""


async def test_a_connection_left_with_pipelined_requests_holds_nothing() -> None:
    """A client that sends requests and goes away before their answers: hypercorn stopped
    reading (waiting for the first answer to be sent) and kept the connection until shutdown."""
    with mock.patch.object(pit.web.serve, "GRACEFUL_TIMEOUT", 6 * HANG_GUARD):
        async with serving(FakeBackend()) as served:
            for ending in ["close", "reset"] * 5:
                await send_case(port_of(served), Case((WEBHOOK * 3,), ending=ending))
            served.shutdown.set()
            with trio.fail_after(CLOSED_GRACE + HANG_GUARD / 2):
                await served.stopped.wait()


async def test_a_connection_that_moves_no_byte_is_closed(
    served: Served, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hypercorn deadlocks on an h2c upgrade of a CONNECT request (it stops reading, sends
    nothing more); `STALL_LIMIT` ends it."""
    monkeypatch.setattr(pit.web.serve, "STALL_LIMIT", 0.5)
    stream = await trio.open_tcp_stream("127.0.0.1", port_of(served))
    async with stream:
        await stream.send_all(b"CONNECT / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n\r\n")
        with trio.fail_after(HANG_GUARD):
            while await stream.receive_some():
                pass  # the 101, HTTP/2 settings, then the server's end of stream
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert warning.getMessage().endswith("closed: no byte in or out for 0.5s")
    assert await webhook_status(port_of(served)) == 202


# --- what one connection raises -------------------------------------------------------------


class RaisingServer:
    """Stands in for hypercorn's `TCPServer`: `run()` raises `error`."""

    error: BaseException

    def __init__(self, *args: object) -> None:
        pass

    async def run(self) -> None:
        raise self.error


async def serve_one(error: BaseException) -> None:
    RaisingServer.error = error
    left, right = trio.socket.socketpair()
    with right, mock.patch.object(pit.web.serve, "TCPServer", RaisingServer):
        stream = trio.SocketStream(left)
        async with stream:
            await _serve_connection(None, None, None, None, stream)


async def test_an_error_in_a_connection_is_logged_and_kept_there(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="pit.web")
    await serve_one(ExceptionGroup("connection", [RuntimeError("boom"), ValueError("bad")]))
    records = [r for r in caplog.records if r.name == "pit.web"]
    assert [r.levelname for r in records] == ["WARNING", "DEBUG"]
    message = records[0].getMessage()
    assert message.endswith(": RuntimeError: boom; ValueError: bad")
    assert records[0].exc_info is None  # one line per connection; the traceback at debug
    assert records[1].exc_info is not None


async def test_keyboard_interrupt_passes_through_and_the_rest_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.RaisesGroup(KeyboardInterrupt):
        await serve_one(BaseExceptionGroup("connection", [KeyboardInterrupt(), OSError("x")]))
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert warning.getMessage().endswith("OSError: x")


async def test_cancellation_passes_through() -> None:
    class Waiting(RaisingServer):
        async def run(self) -> None:
            await trio.sleep_forever()

    left, right = trio.socket.socketpair()
    with left, right, mock.patch.object(pit.web.serve, "TCPServer", Waiting):
        with trio.move_on_after(0.05) as scope:
            await _serve_connection(None, None, None, None, trio.SocketStream(left))
            pytest.fail("the cancellation was swallowed")
        assert scope.cancelled_caught
