"""The writer every frame between pit and a worker goes through: many senders, whole frames in
each sender's order, and a connection that breaks said so to the next sender."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
import trio

from pit.remote.wire import Frame, Kind, Reader
from pit.remote.writer import FrameWriter


@contextlib.asynccontextmanager
async def stream_pair() -> AsyncIterator[tuple[trio.SocketStream, trio.SocketStream]]:
    left, right = trio.socket.socketpair()
    async with trio.SocketStream(left) as ours, trio.SocketStream(right) as theirs:
        yield ours, theirs


async def read_frames(stream: trio.SocketStream, count: int) -> list[Frame]:
    reader, frames = Reader(), list[Frame]()
    while len(frames) < count:
        data = await stream.receive_some(1 << 16)
        assert data, "the connection closed early"
        frames += reader.feed(data)
    return frames


async def test_senders_frames_arrive_whole_in_each_senders_order() -> None:
    async with stream_pair() as (ours, theirs):
        writer = FrameWriter(ours)
        senders, each = 20, 50
        big = bytes(300_000)  # some frames bigger than a socket buffer

        async def sender(channel: int) -> None:
            for number in range(each):
                payload = big if number % 10 == 0 else str(number).encode()
                await writer.send(Kind.OUTPUT, channel, payload)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.run)
            for channel in range(senders):
                nursery.start_soon(sender, channel)
            with trio.fail_after(30):
                frames = await read_frames(theirs, senders * each)
            await writer.drain()
            nursery.cancel_scope.cancel()

        for channel in range(senders):
            payloads = [payload for kind, ch, payload in frames if ch == channel]
            assert payloads == [big if n % 10 == 0 else str(n).encode() for n in range(each)]


async def test_a_sender_cancelled_while_it_waits_leaves_no_half_frame() -> None:
    """A flood fills the queue; a sender cancelled in its wait adds nothing, and what was
    queued before still arrives whole."""
    async with stream_pair() as (ours, theirs):
        writer = FrameWriter(ours)
        chunk = bytes(1 << 20)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.run)
            for _ in range(8):  # 8 MiB queued: over the high-water mark, nobody reading yet
                writer.send_nowait(Kind.OUTPUT, 1, chunk)
            with trio.move_on_after(0.2) as waited:
                await writer.send(Kind.OUTPUT, 2, b"never")
            assert waited.cancelled_caught
            writer.send_nowait(Kind.EXIT, 1, b"{}")
            with trio.fail_after(30):
                frames = await read_frames(theirs, 9)
            nursery.cancel_scope.cancel()
        assert [(kind, channel, len(payload)) for kind, channel, payload in frames] == [
            *[(Kind.OUTPUT, 1, 1 << 20)] * 8,
            (Kind.EXIT, 1, 2),
        ]


async def test_a_broken_connection_fails_the_next_send() -> None:
    async with stream_pair() as (ours, theirs):
        writer = FrameWriter(ours)
        await theirs.aclose()

        async def write() -> None:
            with pytest.raises(trio.BrokenResourceError):
                await writer.run()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(write)
            writer.send_nowait(Kind.OUTPUT, 1, bytes(1 << 20))
            with trio.fail_after(10):
                await writer.drain()  # returns once the writer found the connection broken
            assert writer.broken
            with pytest.raises(trio.BrokenResourceError, match="the connection is gone"):
                await writer.send(Kind.OUTPUT, 1, b"more")
