"""The sending side of pit's end of a worker's connection (the hub's), and the socket options
both ends set.

The frames of every attempt on a connection go through one `FrameWriter`, whose own task
writes whatever queued since its last write in one `send_all`: under load the attempts' small
frames share system calls (on loopback a send also pays for the receiving side's network
stack), and a lone frame still goes at once. A sender that is cancelled never leaves half a
frame on the wire: only the writer writes, and it ends with its connection.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Mapping
from typing import Any

import trio

from pit.remote.wire import Kind, frame

Payload = bytes | Mapping[str, Any]

_HIGH_WATER = 4 << 20
"""Bytes queued at most before a sender waits for the writer (a flood of output)."""


class FrameWriter:
    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._queued: list[bytes] = []
        self._size = 0
        self._wake = trio.Event()
        self._drained = trio.Event()
        self._error: BaseException | None = None

    @property
    def broken(self) -> bool:
        return self._error is not None

    def send_nowait(self, kind: Kind, channel: int, payload: Payload = b"") -> None:
        """Queue a frame (BrokenResourceError once the connection is known gone)."""
        if self._error is not None:
            raise trio.BrokenResourceError(f"the connection is gone: {self._error!r}")
        data = frame(kind, channel, payload)
        self._queued.append(data)
        self._size += len(data)
        self._wake.set()

    async def send(self, kind: Kind, channel: int, payload: Payload = b"") -> None:
        """Queue a frame, waiting first while too much is queued already."""
        while self._size >= _HIGH_WATER and self._error is None:
            await self._drained.wait()
        self.send_nowait(kind, channel, payload)
        await trio.lowlevel.checkpoint()

    async def drain(self) -> None:
        """Wait until all queued frames are written (or the connection broke)."""
        while self._size and self._error is None:
            await self._drained.wait()

    async def run(self) -> None:
        """Write what is queued, until cancelled or the connection breaks (then raises)."""
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                while self._queued:
                    data = b"".join(self._queued)
                    self._queued.clear()
                    await self._stream.send_all(data)
                    self._size -= len(data)
                    self._drained.set()
                    self._drained = trio.Event()
        except BaseException as exc:
            self._error = exc
            self._drained.set()
            raise


def keep_alive(sock: socket.socket | trio.socket.SocketType) -> None:
    """TCP keep-alive on a connection between pit and a worker: a host that vanishes (power,
    network) breaks it within about a minute, and its attempts are lost, not followed forever."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
