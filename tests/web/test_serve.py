"""`serve_app`: listening, the bound port, shutdown by event, logging, a port already taken."""

from __future__ import annotations

import functools
import logging
import socket

import httpx
import pytest
import trio

import pit.web.serve
from pit.web import WebError, create_app, serve_app

from .conftest import HANG_GUARD, Served, one_connection_client, serving
from .fakebackend import FakeBackend, bearer

pytestmark = pytest.mark.slow


async def test_shutdown_with_an_idle_kept_alive_client_ends_serving(
    backend: FakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DECISIONS.md, slow shutdown: an idle kept-alive connection must not hold shutdown for
    hypercorn's graceful timeout (made longer than the hang guard here, so only closing idle
    connections at once passes; see pit/web/asgi.py)."""
    monkeypatch.setattr(pit.web.serve, "GRACEFUL_TIMEOUT", 6 * HANG_GUARD)
    async with serving(backend) as served, one_connection_client(served.url) as client:
        response = await client.post("/webhook/deploy", headers=bearer())
        assert response.status_code == 202
        served.shutdown.set()
        with trio.fail_after(HANG_GUARD):
            await served.stopped.wait()
        # The client sees the connection closed and opens a new one, which nobody answers.
        with pytest.raises(httpx.ConnectError):
            await client.post("/webhook/deploy", headers=bearer())


async def test_a_request_in_flight_at_shutdown_gets_its_answer(
    served: Served, backend: FakeBackend
) -> None:
    backend.hold = trio.Event()
    responses: list[httpx.Response] = []

    async def post() -> None:
        async with one_connection_client(served.url) as client:
            responses.append(await client.post("/webhook/deploy", headers=bearer()))

    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(post)
            await backend.holding.wait()
            served.shutdown.set()
            backend.hold.set()
        await served.stopped.wait()
    assert [r.status_code for r in responses] == [202]


async def test_shutdown_while_idle_ends_serving(served: Served) -> None:
    served.shutdown.set()
    with trio.fail_after(HANG_GUARD):
        await served.stopped.wait()


async def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = create_app(FakeBackend().handle)
        with trio.fail_after(HANG_GUARD), pytest.raises(WebError, match=r"port is in use.*--port"):
            await serve_app(app, host="127.0.0.1", port=port, shutdown=trio.Event())


async def test_a_host_that_is_not_ours_is_a_clear_error() -> None:
    app = create_app(FakeBackend().handle)
    # 192.0.2.0/24 is TEST-NET-1: never an address of this machine.
    with trio.fail_after(HANG_GUARD), pytest.raises(WebError) as raised:
        await serve_app(app, host="192.0.2.1", port=0, shutdown=trio.Event())
    assert str(raised.value) == (
        "cannot listen on 192.0.2.1:0: Cannot assign requested address; check --host (an "
        "address of this machine) and --port"
    )


async def test_hypercorn_logs_to_the_pit_web_logger_not_stderr(
    backend: FakeBackend, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO, logger="pit.web")
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            lambda task_status: serve_app(
                create_app(backend.handle),
                host="127.0.0.1",
                port=0,
                shutdown=shutdown,
                task_status=task_status,
            )
        )
        async with one_connection_client(f"http://127.0.0.1:{port}") as client:
            await client.post("/webhook/deploy", headers=bearer("nope"))
        shutdown.set()
    by_logger = {(r.name, r.getMessage()) for r in caplog.records}
    assert ("pit.web", f"Running on http://127.0.0.1:{port} (CTRL + C to quit)") in by_logger
    access = [message for name, message in by_logger if name == "pit.web.access"]
    assert any('"POST /webhook/deploy 1.1" 401' in message for message in access), access
    assert not any("nope" in message for _, message in by_logger), "a token reached the log"
    assert capfd.readouterr().err == ""


async def test_an_unexpected_error_is_a_logged_500(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    served.backend.failure = True
    async with one_connection_client(served.url) as client:
        response = await client.post("/webhook/deploy", headers=bearer())
    assert response.status_code == 500
    assert set(response.json()) == {"error"}
    (record,) = [r for r in caplog.records if r.name == "pit.web" and r.levelno >= logging.ERROR]
    assert "POST /webhook/deploy" in record.getMessage()
    assert record.exc_info is not None


async def test_the_apps_serving_hooks_run_at_start_and_at_shutdown(backend: FakeBackend) -> None:
    """serve_app runs hypercorn's lifespan itself: before_serving before the port is reported,
    after_serving once shutdown has let the connections go (STYLE 16)."""
    app = create_app(backend.handle)
    calls: list[str] = []

    @app.before_serving
    async def starting() -> None:
        calls.append("before_serving")

    @app.after_serving
    async def stopping() -> None:
        calls.append("after_serving")

    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        with trio.fail_after(HANG_GUARD):
            await nursery.start(
                functools.partial(serve_app, app, host="127.0.0.1", port=0, shutdown=shutdown)
            )
        assert calls == ["before_serving"]
        shutdown.set()
    assert calls == ["before_serving", "after_serving"]
