"""Raw HTTP over a plain socket, for tests of the listener that a client library would not send.

Byte builders (`request`, `post`, `ws_frame`, `h2_frame`, `chunked` and ready-made heads), a
`Case` (chunks and how the client ends), `send_case` (one connection, with a hang bound after
the client's half-close), `webhook_status` (is the server still serving?) and `read_answers`
(HTTP/1.1 answers off a connection the client keeps open).
"""

from __future__ import annotations

import socket
import struct
from typing import Literal

import attrs
import trio

from .fakebackend import TOKEN

HANG_BOUND = 2.5
"""Seconds the server may keep a connection open after the client has closed its side. pit
lets it go within `pit.web.serve.CLOSED_GRACE` (hypercorn alone waited for its 5 s keep-alive
timer, or for ever); the margin is for a loaded machine."""

Ending = Literal["half-close", "close", "reset"]
"""How the client ends: `half-close` (shutdown for writing, then read until the server
closes), `close` (close at once, unread answer and all), `reset` (close with an RST)."""


@attrs.frozen
class Case:
    chunks: tuple[bytes, ...]
    """Sent one after another, each by its own `send` (so the server sees partial reads)."""
    ending: Ending = "half-close"


class Hang(AssertionError):
    """The server kept a connection open past `HANG_BOUND` after the client's half-close."""


# --- bytes ---------------------------------------------------------------------------------------

CRLF = b"\r\n"
AUTH = b"Authorization: Bearer " + TOKEN.encode()


def request(
    method: bytes = b"POST",
    target: bytes = b"/webhook/deploy",
    *headers: bytes,
    body: bytes = b"",
    version: bytes = b"HTTP/1.1",
    host: bool = True,
) -> bytes:
    """One HTTP/1 request head (and body) as given: nothing is checked or added but Host."""
    lines = [b" ".join(part for part in (method, target, version) if part)]
    lines += [b"Host: 127.0.0.1"] if host else []
    lines += headers
    return CRLF.join(lines) + CRLF + CRLF + body


WEBHOOK = request(b"POST", b"/webhook/deploy", AUTH, b"Content-Length: 0")
WEBSOCKET = request(
    b"GET",
    b"/api/x",
    b"Upgrade: websocket",
    b"Connection: Upgrade",
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    b"Sec-WebSocket-Version: 13",
)
H2C = request(
    b"GET",
    b"/webhook/deploy",
    b"Upgrade: h2c",
    b"Connection: Upgrade, HTTP2-Settings",
    b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
)
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def ws_frame(opcode: int, payload: bytes = b"", *, mask: bytes | None = b"abcd") -> bytes:
    """A WebSocket frame (FIN set), masked as a client must unless `mask` is None."""
    length = len(payload)
    head = bytes([0x80 | opcode])
    flag = 0x80 if mask is not None else 0
    if length < 126:
        head += bytes([flag | length])
    else:
        head += bytes([flag | 127]) + struct.pack("!Q", length)
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def h2_frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return (
        struct.pack("!I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack("!I", stream)
        + payload
    )


def chunked(*chunks: bytes, end: bytes = b"0\r\n\r\n") -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + end


def post(*headers: bytes, body: bytes = b"") -> bytes:
    return request(b"POST", b"/webhook/deploy", AUTH, *headers, body=body)


# --- the client side -----------------------------------------------------------------------------


async def send_case(port: int, case: Case, *, hang_bound: float = HANG_BOUND) -> bytes:
    """Send `case` on a new connection and end it as the case says; return what came back.
    Raises `Hang` if the server keeps the connection past `hang_bound` after a half-close."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    received = bytearray()
    async with stream:
        try:
            for chunk in case.chunks:
                await stream.send_all(chunk)
        except trio.BrokenResourceError:
            return bytes(received)  # the server closed while we sent: an ending too
        if case.ending == "reset":
            stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if case.ending != "half-close":
            return bytes(received)
        try:
            await stream.send_eof()
        except trio.BrokenResourceError:
            return bytes(received)  # reset by the server already
        with trio.move_on_after(hang_bound) as timer:
            try:
                while data := await stream.receive_some():
                    received += data
            except trio.BrokenResourceError:
                pass  # reset by the server: ended
        if timer.cancelled_caught:
            raise Hang(f"open {hang_bound}s after the half-close; got {bytes(received[:200])!r}")
    return bytes(received)


async def webhook_status(port: int, *, bound: float = HANG_BOUND) -> int:
    """The status a fresh connection's valid webhook gets (one request, then the server closes);
    `trio.TooSlowError` past `bound`.
    No half-close: hypercorn takes the client's end of stream for a client gone, and cancels the
    request in flight."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(post(b"Content-Length: 0", b"Connection: close"))
        answer = bytearray()
        with trio.fail_after(bound):
            while data := await stream.receive_some():
                answer += data
    return int(answer.split(b" ", 2)[1])


async def read_answers(stream: trio.SocketStream, count: int) -> list[tuple[int, bytes]]:
    """`count` HTTP/1.1 answers (status, body) read off `stream`; each has a Content-Length."""
    buffer, answers = b"", []
    while len(answers) < count:
        head, found, rest = buffer.partition(b"\r\n\r\n")
        length = _content_length(head)
        if found and len(rest) >= length:
            answers.append((int(head.split(b" ")[1]), rest[:length]))
            buffer = rest[length:]
            continue
        data = await stream.receive_some()
        assert data, f"the server closed after {len(answers)} answers"
        buffer += data
    return answers


def _content_length(head: bytes) -> int:
    for line in head.lower().split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name == b"content-length":
            return int(value)
    return 0
