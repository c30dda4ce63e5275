"""`Idempotency-Key` on webhooks and the API's trigger, against the real app on hypercorn: a
repeat answers the first run and starts nothing, across a restart of the app too."""

from __future__ import annotations

import httpx
import pytest
import trio

from pit.messages.webhook import RunRejected

from .conftest import serving
from .fakebackend import FakeBackend, bearer

pytestmark = pytest.mark.slow


def keyed(key: str) -> dict[str, str]:
    return {**bearer(), "Idempotency-Key": key}


async def test_a_repeat_answers_the_first_run_and_starts_none(backend: FakeBackend) -> None:
    async with serving(backend) as served, httpx.AsyncClient(base_url=served.url) as client:
        first = await client.post("/webhook/deploy", headers=keyed("delivery-1"))
        again = await client.post("/webhook/deploy", headers=keyed("delivery-1"))
        other = await client.post("/webhook/deploy", headers=keyed("delivery-2"))
        plain = await client.post("/webhook/deploy", headers=bearer())
    assert first.status_code == 202
    assert (again.status_code, again.json()) == (200, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    assert other.status_code == plain.status_code == 202
    assert len({first.json()["run_id"], other.json()["run_id"], plain.json()["run_id"]}) == 3
    assert backend.requested == ["deploy"] * 3


async def test_repeats_in_flight_together_start_one_run(backend: FakeBackend) -> None:
    backend.hold = trio.Event()
    answers: list[httpx.Response] = []
    async with serving(backend) as served, httpx.AsyncClient(base_url=served.url) as client:

        async def send() -> None:
            answers.append(await client.post("/webhook/deploy", headers=keyed("k")))

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(send)
            await backend.holding.wait()
            await trio.sleep(0.1)  # the other four have arrived, and wait
            backend.hold.set()
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 200, 202]
    assert len({a.json()["run_id"] for a in answers}) == 1
    assert backend.requested == ["deploy"]


async def test_a_refused_request_keeps_no_key(backend: FakeBackend) -> None:
    backend.rejection = RunRejected(reason="overlap", message="a run is active")
    async with serving(backend) as served, httpx.AsyncClient(base_url=served.url) as client:
        refused = await client.post("/webhook/deploy", headers=keyed("k"))
        backend.rejection = None
        retried = await client.post("/webhook/deploy", headers=keyed("k"))
    assert (refused.status_code, retried.status_code) == (409, 202)
    assert backend.requested == ["deploy", "deploy"]


async def test_keys_outlive_a_restart_and_expire_after_a_day(backend: FakeBackend) -> None:
    async with serving(backend) as served, httpx.AsyncClient(base_url=served.url) as client:
        first = await client.post("/webhook/deploy", headers=keyed("k"))
    async with serving(backend) as served, httpx.AsyncClient(base_url=served.url) as client:
        again = await client.post("/webhook/deploy", headers=keyed("k"))
    assert (again.status_code, again.json()) == (200, first.json())
    stored = backend.handle.store.with_name("idempotency.jsonl")
    assert '"key": "k"' in stored.read_text()
    # a day later (as the file says), the key is forgotten, and dropped from the file
    stored.write_text(stored.read_text().replace('"at": "20', '"at": "19'))
    async with serving(backend) as served, httpx.AsyncClient(base_url=served.url) as client:
        later = await client.post("/webhook/deploy", headers=keyed("k"))
    assert later.status_code == 202
    assert later.json()["run_id"] != first.json()["run_id"]
    assert len(stored.read_text().splitlines()) == 1


async def test_the_api_trigger_takes_a_key_too_and_a_bad_key_is_a_400(
    backend: FakeBackend,
) -> None:
    async with serving(backend) as served, httpx.AsyncClient(base_url=served.url) as client:
        headers = {"Idempotency-Key": "api-1", "Host": "127.0.0.1"}
        first = await client.post("/api/dags/deploy/runs", headers=headers)
        again = await client.post("/api/dags/deploy/runs", headers=headers)
        too_long = await client.post(
            "/api/dags/deploy/runs", headers={"Idempotency-Key": "x" * 256}
        )
    assert first.status_code == 202, first.text
    assert (again.status_code, again.json()) == (200, first.json())
    assert too_long.status_code == 400
    assert "over 255 characters" in too_long.json()["error"]
    assert backend.requested == ["deploy"]
