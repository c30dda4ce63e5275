"""pit's end of its remote attempts: one TCP listener per cluster a pit process uses, which the
runners on the workers call back (`pit.remote.worker`).

A task actor whose attempt goes to the cluster first `expect`s it here: the attempt is live,
and its token (an HMAC of its key under this hub's random secret) is what the runner must
show. A worker process keeps one connection here for all the attempts it runs for this
process, each on a channel of its own (`pit.remote.wire`). The first runner to show an
attempt's token gets GO and its channel becomes the attempt's `Link`. Any other is refused: a
token that is not this hub's (audited in the run's secret_access.jsonl when the key names a
run of this process, a bounded number of times; on a connection that never showed a good one,
the connection is closed too), an attempt that is not running (any more), the same attempt
started again by Dask on another worker. A task's SDK requests arrive on the link and are
answered by its run's broker, which knows the asker by the attempt, never by what the request
claims.

The attempts of a connection share it: a follower that falls behind (its buffer of
`_EVENTS_BUFFER` reports full) holds up the reports of its neighbours on that worker until it
catches up, as a slow disk would; nothing is dropped.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import trio

from pit.actors import broker as brokers
from pit.actors.peers import Found, FoundBy, Member
from pit.remote.tarballs import TooLarge, pack_data
from pit.remote.wire import (
    MAX_FRAME,
    Kind,
    Reader,
    WireError,
    chunked,
    fields,
    sign,
    token_ok,
)
from pit.remote.writer import FrameWriter, keep_alive

_RECEIVE_SIZE = 1 << 16
_HELLO_TIMEOUT = 10.0
_HELLO_LIMIT = 4096
"""Bytes of a runner's first frame, at most: before its token is checked it is a stranger."""
_EVENTS_BUFFER = 64
_KEY_LIMIT = 512
"""Characters of a runner's key or worker name kept (what a stranger writes is bounded)."""
_AUDITED_REFUSALS = 100
_AUDITED_RUNS = 1000
log = logging.getLogger("pit.remote")
log.addHandler(logging.NullHandler())


@attrs.define(eq=False)
class Link:
    """One live remote attempt, as its task actor sees it: what its runner reports, in order,
    ending with EXIT, or with `Lost` if the connection broke first."""

    key: str
    member: Member
    token: str
    events: trio.MemoryReceiveChannel[Report]
    _send_events: trio.MemorySendChannel[Report]
    worker: str | None = None
    tarball: bytes = b""
    """The run's project, for a worker that does not have it yet."""
    data_dir: Path | None = None
    """The run's data folder, staged for a worker that cannot see it."""
    _connection: _Connection | None = None
    _channel: int = 0

    async def report(self, report: Report) -> None:
        """Pass on what its runner reported (waiting while its follower catches up); dropped
        once the attempt is over."""
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self._send_events.send(report)

    def task_ended(self) -> bool:
        """Tell the follower Dask's task ended; False if it must be told again (its buffer is
        full: it is busy reading, and will get there)."""
        try:
            self._send_events.send_nowait(TaskEnded())
        except trio.WouldBlock:
            return False
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # nobody follows it any more
        return True

    async def send(self, kind: Kind, payload: bytes | dict[str, Any] = b"") -> bool:
        """Tell the runner; False when it cannot be told (not connected, or gone)."""
        if self._connection is None:
            return False
        return await self._connection.send(kind, self._channel, payload)


@attrs.frozen
class Lost:
    reason: str


@attrs.frozen
class TaskEnded:
    """Dask says the attempt's task ended (its runner's EXIT, if it had one, may still come)."""


Report = tuple[Kind, bytes] | Lost | TaskEnded
"""What a link's follower reads: a runner's frame, or how the attempt was lost, or Dask's
word that its task ended."""


@attrs.define(eq=False)
class _Connection:
    """A worker process's connection: its attempts' links, by channel."""

    writer: FrameWriter
    nursery: trio.Nursery
    links: dict[int, Link] = attrs.field(factory=dict)
    trusted: bool = False
    """It showed one good token: a runner of this hub's attempts, no stranger."""

    async def send(self, kind: Kind, channel: int, payload: bytes | dict[str, Any] = b"") -> bool:
        try:
            await self.writer.send(kind, channel, payload)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return True

    def drop(self, link: Link) -> None:
        """`link`'s attempt is no longer followed: its runner is told to kill it."""
        if self.links.pop(link._channel, None) is link:
            link._connection = None
            with contextlib.suppress(trio.BrokenResourceError):  # gone: so is the attempt
                self.writer.send_nowait(Kind.KILL, link._channel)


@attrs.define(eq=False)
class Hub:
    host: str
    """The address runners reach this process at (and the one it listens on)."""
    port: int = 0
    _secret: bytes = attrs.field(factory=lambda: os.urandom(32))
    _links: dict[str, Link] = attrs.field(factory=dict)
    _refusals: _Refusals = attrs.field(factory=lambda: _Refusals())

    async def run(self, *, task_status: trio.TaskStatus[tuple[str, int]]) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        sockname = listeners[0].socket.getsockname()
        self.port = int(sockname[1])
        task_status.started((self.host, self.port))
        await trio.serve_listeners(self._serve, listeners)

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @contextlib.contextmanager
    def expect(self, key: str, member: Member) -> Iterator[Link]:
        """Attempt `key` of `member` is live for the block: its runner may connect."""
        send, receive = trio.open_memory_channel[Report](_EVENTS_BUFFER)
        link = Link(key, member, sign(self._secret, key), receive, send)
        self._links[key] = link
        try:
            yield link
        finally:
            del self._links[key]
            send.close()
            if link._connection is not None:  # its runner is still there: the attempt must end
                link._connection.drop(link)

    async def _serve(self, stream: trio.SocketStream) -> None:
        keep_alive(stream.socket)
        reader = Reader(limit=_HELLO_LIMIT)
        connection: _Connection | None = None
        try:
            async with trio.open_nursery() as nursery:
                connection = _Connection(FrameWriter(stream), nursery)
                nursery.start_soon(connection.writer.run)
                hello_by = trio.current_time() + _HELLO_TIMEOUT
                while True:
                    data = b""
                    if connection.trusted:
                        data = await stream.receive_some(_RECEIVE_SIZE)
                    else:
                        with trio.move_on_at(hello_by):
                            data = await stream.receive_some(_RECEIVE_SIZE)
                    if not data:  # closed, or a stranger that said nothing in time
                        break
                    frames = reader.feed(data)
                    for kind, channel, payload in frames:
                        await self._take(connection, kind, channel, payload)
                    if frames and not connection.trusted:  # a stranger: no good token
                        with trio.move_on_after(_HELLO_TIMEOUT):
                            await connection.writer.drain()  # its refusal
                        break
                    reader.limit = MAX_FRAME if connection.trusted else _HELLO_LIMIT
                nursery.cancel_scope.cancel()
        except Exception as exc:  # garbled frames, a broken connection: this worker's only
            log.warning("a worker's connection ended: %r", exc)
        finally:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await stream.aclose()
            if connection is not None:
                await self._lose(connection)

    async def _lose(self, connection: _Connection) -> None:
        links, connection.links = connection.links, {}
        for link in links.values():  # their followers wait for an end: this is it
            link._connection = None
            await link.report(Lost(f"the connection to {link.worker} broke"))

    async def _take(self, connection: _Connection, kind: Kind, channel: int, data: bytes) -> None:
        """One frame of a runner's connection."""
        if kind is Kind.HELLO:
            if channel in connection.links:
                raise WireError(f"a second HELLO on channel {channel}")
            await self._admit(connection, channel, fields(data))
            return
        link = connection.links.get(channel)
        if link is None:
            if not connection.trusted:
                raise WireError(f"{kind.name} before HELLO")
            return  # an attempt no longer followed (told to die): what it says is moot
        if kind is Kind.SDK:
            connection.nursery.start_soon(self._answer, link, fields(data))
        elif kind is Kind.FETCH:
            connection.nursery.start_soon(self._send_tarball, link)
        elif kind is Kind.FETCH_DATA:
            connection.nursery.start_soon(self._send_data, link)
        elif kind in (Kind.STARTED, Kind.OUTPUT, Kind.DATA, Kind.EXIT):
            if kind is Kind.EXIT:
                del connection.links[channel]
                link._connection = None
            await link.report((kind, data))
        else:
            raise WireError(f"a runner may not send {kind.name}")

    async def _admit(self, connection: _Connection, channel: int, hello: dict[str, Any]) -> None:
        """Connect the link of the attempt a runner's HELLO names to its channel; or refuse
        it when its token is not pit's (audited, for a run of this process), or its attempt
        is not running (anymore: stopped before its runner came), or it already has a runner
        (Dask started it again after its worker died)."""
        key, token = str(hello.get("key", ""))[:_KEY_LIMIT], hello.get("token")
        link = self._links.get(key)
        if not token_ok(self._secret, key, token):
            reason = "its token is not pit's"
            self._refusals.audit(key, reason)
        else:
            connection.trusted = True
            if link is None:
                reason = "the attempt is not running"
            elif link.worker is not None:
                reason = "the attempt already started on another worker (pit retries, not Dask)"
            else:
                link.worker = str(hello.get("worker", ""))[:_KEY_LIMIT] or "a worker"
                link._connection, link._channel = connection, channel
                connection.links[channel] = link
                await connection.send(Kind.GO, channel)
                return
        await connection.send(Kind.REFUSE, channel, {"reason": reason})

    async def _send_tarball(self, link: Link) -> None:
        for chunk in chunked(link.tarball):
            await link.send(Kind.TARBALL, chunk)

    async def _send_data(self, link: Link) -> None:
        """The run's data folder, for a worker that cannot see it."""
        assert link.data_dir is not None
        try:
            data = await trio.to_thread.run_sync(pack_data, link.data_dir)
        except (OSError, TooLarge) as exc:
            await link.send(Kind.ERROR, {"error": f"cannot stage the run's data: {exc}"})
            return
        for chunk in chunked(data):
            await link.send(Kind.DATA, chunk)

    async def _answer(self, link: Link, request: dict[str, Any]) -> None:
        """An SDK request of the attempt's task, answered by its run's broker."""
        broker = brokers.serving(link.member.run_id)
        text = str(request.get("request", ""))
        if broker is None:
            response, mask = b'{"result": null, "error": "the run has ended"}', list[str]()
        else:
            found = Found(link.member, FoundBy.TOKEN)
            response, mask = await broker.answer(text.encode("utf-8", "surrogateescape"), found)
        answer = {"id": request.get("id"), "response": response.decode(), "mask": mask}
        await link.send(Kind.ANSWER, answer)


@attrs.define
class _Refusals:
    """Refused runners, audited in the secret_access.jsonl of the run their key names when it
    is a run of this process: at most `_AUDITED_REFUSALS` per run (a flood of made-up tokens
    must not fill the disk), then one line saying the rest go unrecorded."""

    counts: dict[str, int] = attrs.field(factory=dict)

    def audit(self, key: str, reason: str) -> None:
        run_id, _, rest = key.partition("/")
        broker = brokers.serving(run_id)
        if broker is None:
            return
        count = self.counts[run_id] = self.counts.get(run_id, 0) + 1
        if count > _AUDITED_REFUSALS:
            return
        if count == _AUDITED_REFUSALS:
            reason = f"{reason} (further refusals for this run are not recorded)"
        broker.refuse_connection(claimed_task=rest.rpartition("/")[0] or None, reason=reason)
        if len(self.counts) > _AUDITED_RUNS:  # forget the oldest runs' counts
            del self.counts[next(iter(self.counts))]
