"""Who may use the API: without a token, clients on this machine only.

A client from another machine cannot be made on 127.0.0.1 (the tests touch nothing else), so
this one test uses Quart's test client, which sets the peer's address in the request scope;
the rest of the API's auth is tested over real HTTP (tests/e2e/test_api.py)."""

from __future__ import annotations

from pit.web import create_app

from .fakebackend import FakeBackend


async def test_without_a_token_the_api_answers_this_machine_only(backend: FakeBackend) -> None:
    app = create_app(backend.handle)
    client = app.test_client()
    far = await client.get("/api/dags", scope_base={"client": ("10.1.2.3", 40000)})
    near = await client.get("/api/dags", scope_base={"client": ("127.0.0.1", 40000)})
    near6 = await client.get("/api/dags", scope_base={"client": ("::1", 40000)})
    health = await client.get("/api/health", scope_base={"client": ("10.1.2.3", 40000)})

    assert far.status_code == 403
    assert "api_token" in (await far.get_json())["error"]
    assert near.status_code == 200
    assert near6.status_code == 200
    assert health.status_code == 200
