"""`POST /webhook/<dag>` against the real app on real hypercorn, driven by httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio

from pit.messages.webhook import RunRejected
from pit.web import MAX_BODY, create_app
from pit.web.app import DRAIN_LIMIT

from .conftest import HANG_GUARD, Served, one_connection_client
from .fakebackend import TOKEN, FakeBackend, bearer

pytestmark = pytest.mark.slow


def local_address(response: httpx.Response) -> object:
    """The client-side address of the connection a response came over."""
    return response.extensions["network_stream"].get_extra_info("client_addr")


async def test_accepted_run_answers_202_with_its_run_id(
    client: httpx.AsyncClient, backend: FakeBackend
) -> None:
    response = await client.post("/webhook/deploy", headers=bearer())
    assert response.status_code == 202
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"run_id": "20240115_143022.001_deploy", "dag": "deploy"}
    assert backend.requested == ["deploy"]


async def test_a_body_is_accepted_and_ignored(client: httpx.AsyncClient) -> None:
    response = await client.post("/webhook/deploy", headers=bearer(), json={"ref": "main"})
    assert response.status_code == 202


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"Authorization": f"Basic {TOKEN}"}, id="wrong-scheme"),
        pytest.param(bearer("supersecret124"), id="wrong-token"),
        pytest.param(bearer(TOKEN[:-1]), id="token-prefix"),
        pytest.param({"Authorization": "Bearer"}, id="no-token"),
        pytest.param({"Authorization": ""}, id="empty-header"),
    ],
)
async def test_missing_or_wrong_token_is_401(
    client: httpx.AsyncClient, backend: FakeBackend, headers: dict[str, str]
) -> None:
    response = await client.post("/webhook/deploy", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert set(response.json()) == {"error"}
    assert backend.requested == []


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER   {TOKEN}"],
    ids=["canonical", "lower-case-scheme", "extra-spaces"],
)
async def test_scheme_is_case_insensitive_and_spaces_are_trimmed(
    client: httpx.AsyncClient, authorization: str
) -> None:
    response = await client.post("/webhook/deploy", headers={"Authorization": authorization})
    assert response.status_code == 202


async def test_a_non_ascii_token_matches_its_utf8_bytes(
    client: httpx.AsyncClient, backend: FakeBackend
) -> None:
    backend.tokens["deploy"] = "pässwört"
    good = await client.post(
        "/webhook/deploy", headers={b"Authorization": "Bearer pässwört".encode()}
    )
    latin1 = await client.post(
        "/webhook/deploy", headers={b"Authorization": "Bearer pässwört".encode("latin-1")}
    )
    assert (good.status_code, latin1.status_code) == (202, 401)


@pytest.mark.parametrize("dag", ["nosuchdag", "nightly"], ids=["unknown-dag", "no-webhook"])
async def test_unknown_dag_or_dag_without_webhook_is_404(
    client: httpx.AsyncClient, backend: FakeBackend, dag: str
) -> None:
    response = await client.post(f"/webhook/{dag}", headers=bearer())
    assert response.status_code == 404
    assert dag in response.json()["error"]
    assert backend.requested == []


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_other_methods_are_405(client: httpx.AsyncClient, method: str) -> None:
    response = await client.request(method, "/webhook/deploy", headers=bearer())
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]
    assert set(response.json()) == {"error"}


async def test_other_paths_are_404_in_json(client: httpx.AsyncClient) -> None:
    response = await client.post("/hooks/deploy", headers=bearer())
    assert response.status_code == 404
    assert set(response.json()) == {"error"}


async def test_overlap_with_an_active_run_is_409(
    client: httpx.AsyncClient, backend: FakeBackend
) -> None:
    backend.rejection = RunRejected(reason="overlap", message="deploy is running (overlap=skip)")
    response = await client.post("/webhook/deploy", headers=bearer())
    assert response.status_code == 409
    assert response.json() == {"error": "deploy is running (overlap=skip)"}


async def test_full_request_queue_is_503_with_retry_after(
    client: httpx.AsyncClient, backend: FakeBackend
) -> None:
    backend.rejection = RunRejected(reason="busy", message="too many runs queued")
    response = await client.post("/webhook/deploy", headers=bearer())
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json() == {"error": "too many runs queued"}


async def test_stopping_is_503_without_asking_for_a_run(
    client: httpx.AsyncClient, backend: FakeBackend
) -> None:
    backend.stopping = True
    response = await client.post("/webhook/deploy", headers=bearer())
    assert response.status_code == 503
    assert "shutting down" in response.json()["error"]
    assert backend.requested == []


async def test_a_webhook_whose_token_pit_cannot_read_is_503_not_404(
    client: httpx.AsyncClient, backend: FakeBackend
) -> None:
    """pit serve started without a secrets file (or without the DAG's token_secret)."""
    backend.tokens["deploy"] = None
    response = await client.post("/webhook/deploy", headers=bearer())
    assert response.status_code == 503
    assert response.json()["error"].startswith("webhook token not available")
    assert response.headers["retry-after"] == "60"
    assert backend.requested == []


async def test_a_run_refused_for_stopping_is_503(
    client: httpx.AsyncClient, backend: FakeBackend
) -> None:
    backend.rejection = RunRejected(reason="stopping", message="pit is stopping")
    response = await client.post("/webhook/deploy", headers=bearer())
    assert response.status_code == 503
    assert "retry-after" not in response.headers


async def test_a_body_over_1_mib_is_413_and_the_connection_stays_usable(
    client: httpx.AsyncClient, backend: FakeBackend
) -> None:
    with trio.fail_after(HANG_GUARD):
        too_large = await client.post(
            "/webhook/deploy", headers=bearer(), content=b"x" * (2 * 1024 * 1024)
        )
        after = await client.post("/webhook/deploy", headers=bearer())
    assert too_large.status_code == 413
    assert set(too_large.json()) == {"error"}
    assert after.status_code == 202
    assert local_address(after) == local_address(too_large)
    assert backend.requested == ["deploy"]


async def test_a_body_of_exactly_1_mib_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post("/webhook/deploy", headers=bearer(), content=b"x" * MAX_BODY)
    assert response.status_code == 202


async def test_a_chunked_body_over_1_mib_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"x" * (MAX_BODY // 2 + 1)

    response = await client.post("/webhook/deploy", headers=bearer(), content=chunks())
    assert response.status_code == 413


async def test_a_body_past_the_drain_limit_is_413_at_once_and_closes(served: Served) -> None:
    """A body declared too large to be worth reading is refused before it is sent."""
    port = int(served.url.rpartition(":")[2])
    head = (
        "POST /webhook/deploy HTTP/1.1\r\nHost: pit\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Length: {DRAIN_LIMIT + 1}\r\n\r\n"
    )
    received = bytearray()
    with trio.fail_after(HANG_GUARD):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(head.encode() + b"x" * 1000)
            while chunk := await stream.receive_some():  # to the server's end of the stream
                received += chunk
    status_line, _, rest = bytes(received).partition(b"\r\n")
    assert status_line == b"HTTP/1.1 413 "
    assert b"connection: close" in rest.lower()


async def late_body() -> AsyncIterator[bytes]:
    """A body that reaches the server after the request head: the app could answer first."""
    await trio.sleep(0.01)
    yield b'{"ref": "main"}'


@pytest.mark.parametrize("late", [False, True], ids=["body-with-head", "body-after-head"])
async def test_one_connection_serves_401_404_405_and_202_in_a_row(
    client: httpx.AsyncClient, backend: FakeBackend, late: bool
) -> None:
    """The keep-alive trap of DECISIONS.md: early answers (401, 404, 405) to requests with a body
    must not stall the next request on the same connection, nor make it reconnect."""

    def body() -> dict[str, Any]:
        return {"content": late_body()} if late else {"json": {"ref": "main"}}

    addresses = set()
    with trio.fail_after(HANG_GUARD):
        for _ in range(20):
            responses = [
                await client.post("/webhook/deploy", headers=bearer("nope"), **body()),
                await client.post("/webhook/nosuchdag", headers=bearer(), **body()),
                await client.put("/webhook/deploy", headers=bearer(), **body()),
                await client.post("/webhook/deploy", headers=bearer(), **body()),
            ]
            assert [r.status_code for r in responses] == [401, 404, 405, 202]
            addresses |= {local_address(r) for r in responses}
    assert len(addresses) == 1, "each request should reuse the one kept-alive connection"
    assert len(backend.requested) == 20


async def test_concurrent_clients_all_get_202(served: Served, backend: FakeBackend) -> None:
    async def post_many(count: int) -> None:
        async with one_connection_client(served.url) as client:
            for _ in range(count):
                response = await client.post("/webhook/deploy", headers=bearer(), json={})
                assert response.status_code == 202

    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(post_many, 10)
    assert len(backend.requested) == 100
    assert len(set(backend.requested)) == 1


async def test_a_client_gone_away_cancels_its_request(served: Served, backend: FakeBackend) -> None:
    """pit/web/asgi.py keeps quart-trio's cancel for a client that disconnects mid-request."""
    backend.hold = trio.Event()
    async with httpx.AsyncClient(base_url=served.url, timeout=0.2) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/webhook/deploy", headers=bearer())
    with trio.fail_after(HANG_GUARD):
        await backend.cancelled.wait()


async def test_routes_can_still_read_the_body(backend: FakeBackend) -> None:
    """The app reads every body up front; it puts it back for the routes that want it."""
    from quart import request

    app = create_app(backend.handle)

    @app.post("/echo")
    async def echo() -> dict[str, object]:
        return {"json": await request.get_json(), "size": len(await request.get_data())}

    async with app.test_app() as test_app:
        response = await test_app.test_client().post("/echo", json={"a": 1})
        assert response.status_code == 200
        assert await response.get_json() == {"json": {"a": 1}, "size": 8}
