"""The SDK broker, spoken to by a raw socket client exactly as sdk-wire-protocol.md describes."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from pit.actors.broker import AUDIT_FILE, Broker, BrokerHandle
from pit.clock import SystemClock
from pit.spec.secrets import parse_secrets

SECRETS = """
[global]
api_token = "global-token"
shared = "from-global"

[global.warehouse]
host = "db.example.com"
password = "pa55word"

[etl]
shared = "from-project"
"""

pytestmark = pytest.mark.slow  # real sockets and real timeouts


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[BrokerHandle]:
    secrets, problems = parse_secrets(SECRETS, "secrets.toml")
    assert problems == []
    actor = Broker(
        run_id="run-1",
        project="etl",
        secrets=secrets,
        data_dir=tmp_path,
        workspace=tmp_path,
        audit_path=tmp_path / AUDIT_FILE,
        clock=SystemClock(),
        read_timeout=0.5,
    )
    async with trio.open_nursery() as nursery:
        yield await nursery.start(actor.run)
        nursery.cancel_scope.cancel()


async def exchange(handle: BrokerHandle, payload: bytes) -> bytes:
    """One connection: write the request, half-close, read the answer to EOF."""
    stream = await trio.open_unix_socket(str(handle.socket_path))
    async with stream:
        await stream.send_all(payload)
        await stream.send_eof()
        chunks = []
        while chunk := await stream.receive_some(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def call(handle: BrokerHandle, method: str, **params: Any) -> dict[str, Any]:
    reply = await exchange(handle, json.dumps({"method": method, "params": params}).encode())
    answer: dict[str, Any] = json.loads(reply)
    assert set(answer) == {"result", "error"}
    return answer


async def test_a_plain_secret_comes_from_the_project_section_first(broker: BrokerHandle) -> None:
    assert await call(broker, "get_secret", key="shared") == {
        "result": "from-project",
        "error": None,
    }
    assert (await call(broker, "get_secret", key="api_token"))["result"] == "global-token"


async def test_a_structured_secret_is_a_json_object_string(broker: BrokerHandle) -> None:
    answer = await call(broker, "get_secret", key="warehouse")
    assert json.loads(answer["result"]) == {"host": "db.example.com", "password": "pa55word"}
    field = await call(broker, "get_secret_field", secret="warehouse", field="host")
    assert field == {"result": "db.example.com", "error": None}


async def test_missing_secrets_and_fields_name_what_was_searched(broker: BrokerHandle) -> None:
    missing = await call(broker, "get_secret", key="nope")
    assert missing["result"] is None
    assert "'nope'" in missing["error"]
    assert "[etl]" in missing["error"]
    assert "[global]" in missing["error"]
    no_field = await call(broker, "get_secret_field", secret="warehouse", field="port")
    assert "has no field 'port'" in no_field["error"]


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b'{"method": "get_secret", "params": {"key": ', "malformed JSON"),
        (b"[1, 2, 3]", "JSON object"),
        (b'{"params": {}}', "missing method"),
        (b'{"method": "get_secret", "params": {}}', "missing param 'key'"),
        (b'{"method": "get_secret", "params": {"key": 7}}', "must be a string"),
        (b'{"method": "explode", "params": {}}', "unknown method: explode"),
        (b"\xff\xfe", "malformed JSON"),
    ],
)
async def test_bad_requests_get_an_error_response(
    broker: BrokerHandle, payload: bytes, error: str
) -> None:
    answer = json.loads(await exchange(broker, payload))
    assert answer["result"] is None
    assert error in answer["error"]


async def test_a_request_over_one_mebibyte_is_refused(broker: BrokerHandle) -> None:
    big = json.dumps({"method": "get_secret", "params": {"key": "x" * (1 << 20)}}).encode()
    answer = json.loads(await exchange(broker, big))
    assert "larger than" in answer["error"]


async def test_a_silent_client_is_dropped_and_others_are_served(broker: BrokerHandle) -> None:
    silent = await trio.open_unix_socket(str(broker.socket_path))
    async with silent:
        assert (await call(broker, "get_secret", key="api_token"))["result"] == "global-token"
        with trio.fail_after(5):
            assert await silent.receive_some(100) == b""  # closed after the read timeout


async def test_many_concurrent_clients_are_all_answered(broker: BrokerHandle) -> None:
    answers: list[str] = []

    async def client() -> None:
        answers.append((await call(broker, "get_secret", key="shared"))["result"])

    async with trio.open_nursery() as nursery:
        for _ in range(200):
            nursery.start_soon(client)
    assert answers == ["from-project"] * 200


async def test_each_access_is_audited_without_its_value(
    broker: BrokerHandle, tmp_path: Path
) -> None:
    await call(broker, "get_secret", key="api_token", task="extract")
    await call(broker, "get_secret_field", secret="warehouse", field="password")
    lines = [json.loads(line) for line in (tmp_path / AUDIT_FILE).read_text().splitlines()]
    assert [(e["task"], e["secret"]) for e in lines] == [
        ("extract", "api_token"),
        (None, "warehouse.password"),  # this test process has no PIT_TASK_NAME
    ]
    assert all(e["run_id"] == "run-1" and e["at"] for e in lines)
    assert "global-token" not in (tmp_path / AUDIT_FILE).read_text()
    assert "pa55word" not in (tmp_path / AUDIT_FILE).read_text()


async def test_the_socket_is_private_short_and_removed_at_the_end(tmp_path: Path) -> None:
    actor = Broker(
        run_id="r",
        project="etl",
        secrets=None,
        data_dir=tmp_path,
        workspace=tmp_path,
        audit_path=tmp_path / AUDIT_FILE,
        clock=SystemClock(),
    )
    async with trio.open_nursery() as nursery:
        handle = await nursery.start(actor.run)
        path = handle.socket_path
        assert len(str(path)) < 100
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        answer = await call(handle, "get_secret", key="x")
        assert "no secrets file" in answer["error"]
        assert "--secrets" in answer["error"]
        nursery.cancel_scope.cancel()
    assert not path.parent.exists()
