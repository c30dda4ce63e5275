"""The OpenAPI document covers every route of the API, as the app registered them."""

from __future__ import annotations

import httpx

from pit.web import create_app

from .fakebackend import FakeBackend


async def test_every_api_route_is_in_the_document(
    backend: FakeBackend, client: httpx.AsyncClient
) -> None:
    document = (await client.get("/api/openapi.json")).json()
    documented = {
        (method.upper(), path.replace("{", "<").replace("}", ">"))
        for path, operations in document["paths"].items()
        for method in operations
    }
    app = create_app(backend.handle)
    registered = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(("/api/", "/metrics")) and not rule.websocket
        for method in rule.methods or ()
        if method in ("GET", "POST")
    }
    assert registered - documented == {("GET", "/api/openapi.json")}
    assert documented <= registered
    assert document["openapi"].startswith("3.")
    run = document["components"]["schemas"]["RunJson"]
    assert run["required"] == sorted(
        [
            *("id", "dag_name", "status", "started_at", "ended_at", "trigger", "error"),
            *("scheduled_time", "code_version", "rerun_of"),
        ]
    )
