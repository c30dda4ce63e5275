"""The wire between `pit serve` and its executor process: one pickled message per frame.

A frame is a 4-byte big-endian length and that many bytes of pickle. Each side reads only the
messages the other may send (`ToExecutor` one way, `FromExecutor` the other): anything else is
a pit bug, raised as `FrameError`. Both ends are pit itself, on one machine, from one
installation; pickle never reads anything from elsewhere.
"""

from __future__ import annotations

import pickle
import struct
from typing import Generic, TypeVar, get_args

import trio

from pit.messages.executor import FromExecutor, ToExecutor

_LENGTH = struct.Struct(">I")
_READ_SIZE = 65536

Message = TypeVar("Message", ToExecutor, FromExecutor)


class FrameError(Exception):
    """A pit bug: the other side sent a message it may not send."""


def encode(message: ToExecutor | FromExecutor) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


class FrameReader(Generic[Message]):
    """The messages of one kind (`ToExecutor` or `FromExecutor`) read from a stream."""

    def __init__(self, stream: trio.abc.ReceiveStream, kind: object) -> None:
        self._stream = stream
        self._kinds = get_args(kind) or (kind,)
        self._buffer = bytearray()

    @classmethod
    def to_executor(cls, stream: trio.abc.ReceiveStream) -> FrameReader[ToExecutor]:
        return FrameReader[ToExecutor](stream, ToExecutor)

    @classmethod
    def from_executor(cls, stream: trio.abc.ReceiveStream) -> FrameReader[FromExecutor]:
        return FrameReader[FromExecutor](stream, FromExecutor)

    async def receive(self) -> Message | None:
        """The next message; None at the end of the stream."""
        while True:
            if len(self._buffer) >= _LENGTH.size:
                (size,) = _LENGTH.unpack_from(self._buffer)
                end = _LENGTH.size + size
                if len(self._buffer) >= end:
                    message = pickle.loads(self._buffer[_LENGTH.size : end])
                    del self._buffer[:end]
                    if not isinstance(message, self._kinds):
                        raise FrameError(f"unexpected message {message!r}")
                    return message  # type: ignore[no-any-return]  # checked just above
            chunk = await self._stream.receive_some(_READ_SIZE)
            if not chunk:
                return None
            self._buffer += chunk
