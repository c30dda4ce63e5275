"""The hub, pit's end of remote attempts, spoken to over real TCP as a worker's runner would:
who it lets in (the attempt's own token, once), and the SDK answered through it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from pit.actors.broker import Broker
from pit.actors.peers import Member
from pit.clock import SystemClock
from pit.remote.hub import Hub, Link, Lost
from pit.remote.wire import Frame, Kind, Reader, fields, frame
from pit.spec.secrets import parse_secrets
from pit.store.rundir import AUDIT_FILE

pytestmark = pytest.mark.slow  # real sockets

SECRETS = '[global]\napi_token = "tok-5ecret-value"\n'


class Runner:
    """A worker's side of one connection to the hub."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.reader = Reader()
        self.pending: list[Frame] = []

    async def send(
        self, kind: Kind, payload: bytes | dict[str, Any] = b"", channel: int = 1
    ) -> None:
        await self.stream.send_all(frame(kind, channel, payload))

    async def receive(self) -> Frame | None:
        while not self.pending:
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self.pending.extend(self.reader.feed(data))
        return self.pending.pop(0)

    async def hello(self, key: str, token: str, channel: int = 1) -> Kind | None:
        hello = {"key": key, "token": token, "worker": "tcp://w:1"}
        await self.send(Kind.HELLO, hello, channel)
        answer = await self.receive()
        assert answer is None or answer[1] == channel
        return answer[0] if answer else None


class Serving:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.runners: list[Runner] = []

    def expect(self, key: str, member: Member) -> Any:
        return self.hub.expect(key, member)

    async def connect(self) -> Runner:
        runner = Runner(await trio.open_tcp_stream(*self.hub.address))
        self.runners.append(runner)
        return runner


@pytest.fixture
async def serving(tmp_path: Path) -> AsyncIterator[Serving]:
    secrets, _ = parse_secrets(SECRETS, "secrets.toml")
    broker = Broker(
        run_id="run-1",
        project="etl",
        secrets=secrets,
        data_dir=tmp_path,
        workspace=tmp_path,
        audit_path=tmp_path / AUDIT_FILE,
        clock=SystemClock(),
    )
    hub = Hub("127.0.0.1")
    async with trio.open_nursery() as nursery:
        await nursery.start(broker.run)
        await nursery.start(hub.run)
        serving = Serving(hub)
        yield serving
        for runner in serving.runners:
            await runner.stream.aclose()
        nursery.cancel_scope.cancel()


def audit(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / AUDIT_FILE).read_text().splitlines()
    return [json.loads(line) for line in lines]


async def test_a_forged_token_is_refused_and_audited(serving: Serving, tmp_path: Path) -> None:
    with serving.expect("run-1/load/1", Member("run-1", "load")):
        runner = await serving.connect()
        assert await runner.hello("run-1/load/1", "0" * 64) is Kind.REFUSE
        assert await runner.receive() is None  # and the connection is closed

    (entry,) = audit(tmp_path)
    assert entry["outcome"] == "refused"
    assert entry["task"] is None
    assert entry["claimed_task"] == "load"
    assert "token" in entry["reason"]


async def test_a_token_is_good_only_for_its_attempt_while_it_runs(serving: Serving) -> None:
    with serving.expect("run-1/load/1", Member("run-1", "load")) as first:
        token = first.token
        # Another attempt's key with this token: refused.
        other = await serving.connect()
        assert await other.hello("run-1/load/2", token) is Kind.REFUSE
    # The attempt ended: its token is worth nothing now (a replay).
    replay = await serving.connect()
    assert await replay.hello("run-1/load/1", token) is Kind.REFUSE


async def test_the_attempt_runs_once_and_its_task_reads_secrets_through_it(
    serving: Serving, tmp_path: Path
) -> None:
    with serving.expect("run-1/load/1", Member("run-1", "load")) as link:
        runner = await serving.connect()
        assert await runner.hello("run-1/load/1", link.token) is Kind.GO
        # Dask starting the same attempt again on another worker: refused.
        again = await serving.connect()
        assert await again.hello("run-1/load/1", link.token) is Kind.REFUSE

        request = {"method": "get_secret", "params": {"key": "api_token", "task": "other"}}
        await runner.send(Kind.SDK, {"id": 7, "request": json.dumps(request)})
        kind, _, payload = await runner.receive() or (None, 0, b"")
        assert kind is Kind.ANSWER
        answer = fields(payload)
        assert answer["id"] == 7
        assert json.loads(answer["response"]) == {"result": "tok-5ecret-value", "error": None}
        assert answer["mask"] == ["tok-5ecret-value"]  # what the worker must mask

        await runner.send(Kind.STARTED, {"pid": 1})
        await runner.send(Kind.OUTPUT, b"hello\n")
        await runner.stream.aclose()
        assert await reports(link) == [
            (Kind.STARTED, b'{"pid": 1}'),
            (Kind.OUTPUT, b"hello\n"),
            Lost("the connection to tcp://w:1 broke"),
        ]

    (entry,) = audit(tmp_path)
    assert (entry["task"], entry["found_by"], entry["claimed_task"]) == (
        "load",
        "attempt token",
        "other",
    )


async def reports(link: Link, until: Kind | None = None) -> list[tuple[Kind, bytes] | Lost]:
    found: list[tuple[Kind, bytes] | Lost] = []
    with trio.fail_after(10):
        async for report in link.events:
            found.append(report)
            if isinstance(report, Lost) or report[0] is until:
                break
    return found


async def test_bytes_that_are_no_frame_drop_only_that_connection(serving: Serving) -> None:
    rogue = await serving.connect()
    await rogue.stream.send_all(b"\xff" * 64)
    assert await rogue.receive() is None
    with serving.expect("run-1/load/1", Member("run-1", "load")) as link:
        runner = await serving.connect()
        assert await runner.hello("run-1/load/1", link.token) is Kind.GO


async def test_a_garbled_frame_after_go_loses_that_attempt_only(serving: Serving) -> None:
    with serving.expect("run-1/load/1", Member("run-1", "load")) as link:
        runner = await serving.connect()
        assert await runner.hello("run-1/load/1", link.token) is Kind.GO
        await runner.send(Kind.SDK, b"{not json")
        assert await runner.receive() is None  # that connection is dropped
        (lost,) = await reports(link)
        assert isinstance(lost, Lost)
    with serving.expect("run-1/load/2", Member("run-1", "load")) as link:
        again = await serving.connect()
        assert await again.hello("run-1/load/2", link.token) is Kind.GO  # the hub serves on


async def test_a_runner_still_there_when_its_attempt_ends_is_told_to_kill_it(
    serving: Serving,
) -> None:
    """A stop that came before the runner reported, or a task actor torn down: the runner must
    learn at once that nobody follows its attempt; its connection serves on."""
    with serving.expect("run-1/load/1", Member("run-1", "load")) as link:
        runner = await serving.connect()
        assert await runner.hello("run-1/load/1", link.token) is Kind.GO
    with trio.fail_after(10):
        assert await runner.receive() == (Kind.KILL, 1, b"")
    await runner.send(Kind.EXIT, {"returncode": -9}, channel=1)  # moot now: dropped
    with serving.expect("run-1/load/2", Member("run-1", "load")) as link:
        assert await runner.hello("run-1/load/2", link.token, channel=2) is Kind.GO


async def test_attempts_share_a_connection_each_on_its_channel(serving: Serving) -> None:
    """A worker's attempts for one pit process: one connection, a channel each; its break
    loses every attempt on it."""
    load, clean = Member("run-1", "load"), Member("run-1", "clean")
    with (
        serving.expect("run-1/load/1", load) as first,
        serving.expect("run-1/clean/1", clean) as second,
    ):
        runner = await serving.connect()
        assert await runner.hello("run-1/load/1", first.token, channel=1) is Kind.GO
        assert await runner.hello("run-1/clean/1", second.token, channel=2) is Kind.GO
        await runner.send(Kind.OUTPUT, b"clean\n", channel=2)
        await runner.send(Kind.OUTPUT, b"load\n", channel=1)
        await runner.send(Kind.EXIT, {"returncode": 0}, channel=2)
        await runner.send(Kind.HELLO, {"key": "run-1/clean/1"}, channel=1)  # channel in use
        assert await runner.receive() is None  # a runner that breaks the protocol is dropped
        assert await reports(first) == [
            (Kind.OUTPUT, b"load\n"),
            Lost("the connection to tcp://w:1 broke"),
        ]
        assert await reports(second, until=Kind.EXIT) == [
            (Kind.OUTPUT, b"clean\n"),
            (Kind.EXIT, b'{"returncode": 0}'),
        ]


async def test_a_stranger_cannot_make_the_hub_hold_a_big_first_frame(serving: Serving) -> None:
    stranger = await serving.connect()
    header = (10 << 20).to_bytes(4, "big") + bytes([Kind.HELLO]) + (1).to_bytes(4, "big")
    await stranger.stream.send_all(header)
    with trio.fail_after(10):
        assert await stranger.receive() is None  # dropped at its header, not 10 MiB later
