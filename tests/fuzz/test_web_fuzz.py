"""Fuzz the web listener byte by byte: nothing one connection sends may end `pit serve`.

The real listener (`serve_app(create_app(FakeBackend().handle))` on 127.0.0.1) gets raw bytes
over a plain socket: a handwritten list of nasty cases (`NASTY`), and streams that `fuzz_case`
generates from a `random.Random` (hypothesis drives it here, so a failure shrinks and replays;
`bench/fuzz_web.py` sends many more). After each case:

- the connection ended within `HANG_BOUND` of the client closing its side (`half-close`), or
  the client dropped it (`close`, `reset`) (`tests/web/rawhttp.py`, `send_case`); pit's
  `STALL_LIMIT` is shortened to 1 s here, so that one hypercorn deadlocks ends in time too;
- no exception left the server (`serving` would raise it), and it still serves: a fresh
  connection's `POST /webhook/deploy` with the right token is answered 202;
- nothing of the closed connections lives on: shutdown does not wait for the graceful timeout.
"""

from __future__ import annotations

import itertools
import random
from unittest import mock

import pytest
import trio
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import pit.web.serve
from tests.web.conftest import serving
from tests.web.fakebackend import FakeBackend
from tests.web.rawhttp import (
    AUTH,
    CRLF,
    H2_PREFACE,
    H2C,
    WEBHOOK,
    WEBSOCKET,
    Case,
    Ending,
    chunked,
    h2_frame,
    post,
    request,
    send_case,
    webhook_status,
    ws_frame,
)

pytestmark = pytest.mark.slow

STALL_LIMIT = 1.0
"""`pit.web.serve.STALL_LIMIT` here (60 s in pit): a connection hypercorn deadlocks (see
`connect-h2c`) must end within `HANG_BOUND` too. Nothing here waits on a live connection."""

SHUTDOWN_BOUND = max(pit.web.serve.CLOSED_GRACE, STALL_LIMIT) + 1.5
"""Seconds shutdown may take once the client has closed every connection (what a closed
connection left behind gets `CLOSED_GRACE`; one hypercorn deadlocked, `STALL_LIMIT`)."""

NASTY: dict[str, Case] = {
    # The reliability issue: the upgrade and a frame in one read.
    "websocket-then-close-frame": Case((WEBSOCKET + ws_frame(8),)),
    "websocket-then-frame-later": Case((WEBSOCKET, ws_frame(8))),
    "websocket-then-text-frame": Case((WEBSOCKET + ws_frame(1, b"hello"),)),
    "websocket-then-unmasked-frame": Case((WEBSOCKET + ws_frame(9, b"p", mask=None),)),
    "websocket-then-huge-frame-head": Case((WEBSOCKET + b"\x82\xff" + b"\x7f" * 8 + b"abcd",)),
    "websocket-then-garbage": Case((WEBSOCKET + b"\xff" * 64,)),
    "websocket-then-request": Case((WEBSOCKET + WEBHOOK,)),
    "websocket-no-key": Case(
        (request(b"GET", b"/", b"Upgrade: websocket", b"Connection: upgrade"),)
    ),
    "websocket-dropped": Case((WEBSOCKET,), ending="close"),
    "websocket-reset": Case((WEBSOCKET + ws_frame(8),), ending="reset"),
    "h2c-then-garbage": Case((H2C + b"garbage" * 10,)),
    "h2c-then-preface-and-garbage": Case((H2C + H2_PREFACE + b"\x00" * 40,)),
    "h2c-then-settings-flood": Case((H2C + H2_PREFACE + h2_frame(4, 0, 0) * 200,)),
    "connect-h2c": Case((request(b"CONNECT", b"/", b"Upgrade: h2c"),)),  # hypercorn deadlocks
    "h2c-with-body": Case((H2C.replace(b"\r\n\r\n", b"\r\nContent-Length: 3\r\n\r\nabc"),)),
    "h2-prior-knowledge-then-garbage": Case((H2_PREFACE + b"\xff" * 50,)),
    "h2-headers-on-stream-0": Case((H2_PREFACE + h2_frame(4, 0, 0) + h2_frame(1, 5, 0, b"\x82"),)),
    "h2-frame-too-large": Case((H2_PREFACE + h2_frame(4, 0, 0) + b"\xff\xff\xff\x00\x00\0\0\0\1",)),
    "pipelined-webhooks": Case((WEBHOOK * 5,)),
    "pipelined-webhooks-then-gone": Case((WEBHOOK * 3,), ending="close"),
    "pipelined-webhooks-then-reset": Case((WEBHOOK * 3,), ending="reset"),
    "pipelined-then-garbage": Case((WEBHOOK * 2 + b"\x00garbage\r\n\r\n",)),
    "garbage-after-request": Case((WEBHOOK + b"\x16\x03\x01\x02\x00",)),
    "tls-client-hello": Case((b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 100,)),
    "truncated-head": Case((b"POST /webhook/deploy HTTP/1.1\r\nHost: x\r\nAuthor",)),
    "nothing-at-all": Case(()),
    "header-of-100-KB": Case((request(b"GET", b"/", b"X-Big: " + b"a" * 100_000),)),
    "10000-headers": Case((request(b"GET", b"/", *[b"X-%d: v" % i for i in range(10_000)]),)),
    "target-of-100-KB": Case((request(b"GET", b"/" + b"a" * 100_000),)),
    "invalid-method": Case((request(b"P\x00ST", b"/webhook/deploy"),)),
    "lower-case-method": Case((request(b"post", b"/webhook/deploy", AUTH),)),
    "connect-method": Case((request(b"CONNECT", b"x:443"),)),
    "version-9.9": Case((request(b"GET", b"/", version=b"HTTP/9.9"),)),
    "version-0.9": Case((b"GET /\r\n",)),
    "version-garbage": Case((request(b"GET", b"/", version=b"HTTP/1.1x"),)),
    "no-host": Case((request(b"POST", b"/webhook/deploy", AUTH, host=False),)),
    "http-1.0": Case((request(b"POST", b"/webhook/deploy", AUTH, version=b"HTTP/1.0"),)),
    "absolute-target": Case((request(b"POST", b"http://x/webhook/deploy", AUTH),)),
    "asterisk-target": Case((request(b"OPTIONS", b"*"),)),
    "bare-lf": Case((WEBHOOK.replace(b"\r\n", b"\n"),)),
    "obs-fold": Case((post(b"X-A: a", b" folded", b"Content-Length: 0"),)),
    "nul-in-header": Case((post(b"X-A\x00: a\x00b", b"Content-Length: 0"),)),
    "chunk-size-not-hex": Case(
        (post(b"Transfer-Encoding: chunked", body=b"zz\r\nab\r\n0\r\n\r\n"),)
    ),
    "chunk-size-negative": Case((post(b"Transfer-Encoding: chunked", body=b"-1\r\na\r\n"),)),
    "chunk-size-huge": Case((post(b"Transfer-Encoding: chunked", body=b"f" * 40 + b"\r\nab"),)),
    "chunk-size-2-GiB": Case(
        (post(b"Transfer-Encoding: chunked", body=b"7fffffff\r\n" + b"a" * 1000),)
    ),
    "chunk-no-crlf": Case((post(b"Transfer-Encoding: chunked", body=b"3\r\nabcX0\r\n\r\n"),)),
    "chunk-extension-and-trailer": Case(
        (post(b"Transfer-Encoding: chunked", body=b"3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n"),)
    ),
    "chunked-no-end": Case((post(b"Transfer-Encoding: chunked", body=chunked(b"ab", end=b"")),)),
    "chunked-twice": Case(
        (post(b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked", body=chunked(b"a")),)
    ),
    "transfer-encoding-gzip": Case((post(b"Transfer-Encoding: gzip", body=b"abc"),)),
    "length-and-chunked": Case(
        (post(b"Content-Length: 3", b"Transfer-Encoding: chunked", body=chunked(b"abc")),)
    ),
    "length-short-then-more": Case((post(b"Content-Length: 2", body=b"abcdef"),)),
    "length-long-then-half-close": Case((post(b"Content-Length: 100", body=b"abc"),)),
    "length-negative": Case((post(b"Content-Length: -1", body=b"abc"),)),
    "length-not-a-number": Case((post(b"Content-Length: 1e3", body=b"abc"),)),
    "length-duplicate-differs": Case(
        (post(b"Content-Length: 1", b"Content-Length: 2", body=b"ab"),)
    ),
    "length-duplicate-same": Case((post(b"Content-Length: 2", b"Content-Length: 2", body=b"ab"),)),
    "length-huge": Case((post(b"Content-Length: " + b"9" * 30, body=b"abc"),)),
    "length-over-drain-limit": Case((post(b"Content-Length: %d" % (1 << 40)),)),
    "body-over-max": Case((post(b"Content-Length: %d" % (2 << 20)), b"a" * (2 << 20))),
    "expect-100-then-nothing": Case((post(b"Expect: 100-continue", b"Content-Length: 5"),)),
    "dropped-mid-body": Case((post(b"Content-Length: 100000", body=b"a" * 5000),), ending="close"),
    "reset-mid-body": Case((post(b"Content-Length: 100000", body=b"a" * 5000),), ending="reset"),
    "reset-mid-head": Case((b"POST /webhook/deploy HTTP/1.1\r\nHo",), ending="reset"),
    "nul-bytes": Case((b"\x00" * 1000,)),
    "crlf-only": Case((CRLF * 1000,)),
}


# --- generated streams ---------------------------------------------------------------------------

METHODS = [
    b"POST", b"GET", b"PUT", b"HEAD", b"OPTIONS", b"DELETE", b"PRI", b"CONNECT", b"", b"P@ST",
]  # fmt: skip
TARGETS = [
    b"/webhook/deploy", b"/webhook/nightly", b"/webhook/nope", b"/", b"*", b"/api/x", b"",
    b"/webhook/%00", b"/webhook/deploy?x=1", b"http://x/webhook/deploy", b"/webhook/" + b"d" * 300,
]  # fmt: skip
VERSIONS = [b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.x", b""]
HEADERS = [
    AUTH, AUTH, b"Authorization: Bearer wrong", b"Authorization: Basic x", b"Host: y",
    b"Content-Length: 0", b"Content-Length: 3", b"Content-Length: -1", b"Content-Length: 99999",
    b"Content-Length: " + b"9" * 25, b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip",
    b"Connection: close", b"Connection: keep-alive", b"Connection: Upgrade",
    b"Upgrade: websocket", b"Upgrade: h2c", b"Upgrade: nonsense", b"Sec-WebSocket-Version: 13",
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
    b"Expect: 100-continue", b"Content-Type: application/json", b"X-\x00: \x00", b" folded",
    b"No-Colon", b": no-name", b"X-Long: " + b"v" * 5000,
]  # fmt: skip
WS_OPCODES = [0, 1, 2, 8, 9, 10, 3, 15]


def fuzz_case(rng: random.Random) -> Case:
    """One generated stream: a few pieces (requests, upgrades, frames, bodies, garbage), maybe
    mutated, cut into chunks at random places, with a random ending."""
    data = b"".join(_piece(rng) for _ in range(rng.randint(1, 3)))
    if rng.random() < 0.3:
        data = _mutate(rng, data)
    ending: Ending = rng.choice(["half-close", "half-close", "half-close", "close", "reset"])
    return Case(_cut(rng, data), ending)


def _piece(rng: random.Random) -> bytes:
    kind = rng.randrange(8)
    if kind == 0:
        return rng.choice([WEBSOCKET, H2C, H2_PREFACE, WEBHOOK])
    if kind == 1:
        opcode, payload = rng.choice(WS_OPCODES), rng.randbytes(rng.randint(0, 200))
        return ws_frame(opcode, payload, mask=rng.choice([b"abcd", None]))
    if kind == 2:
        kind_, flags, stream = rng.randrange(12), rng.randrange(256), rng.randrange(4)
        return h2_frame(kind_, flags, stream, rng.randbytes(rng.randint(0, 60)))
    if kind == 3:
        return rng.randbytes(rng.randint(0, 300))
    if kind == 4:
        return chunked(*[rng.randbytes(rng.randint(0, 50)) for _ in range(rng.randint(0, 3))])
    return _request(rng)


def _request(rng: random.Random) -> bytes:
    headers = [rng.choice(HEADERS) for _ in range(rng.randint(0, 6))]
    body = rng.randbytes(rng.choice([0, 0, 3, rng.randint(0, 2000)]))
    if rng.random() < 0.5:
        headers.append(b"Content-Length: %d" % len(body))
    if rng.random() < 0.2:
        body = chunked(body, body[:7])
    return request(
        rng.choice(METHODS),
        rng.choice(TARGETS),
        *headers,
        body=body,
        version=rng.choice(VERSIONS),
        host=rng.random() < 0.9,
    )


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not buffer:
            break
        at = rng.randrange(len(buffer))
        match rng.randrange(5):
            case 0:
                buffer[at] = rng.randrange(256)  # flip a byte
            case 1:
                del buffer[at:]  # truncate
            case 2:
                buffer[at:at] = buffer[at : at + rng.randint(1, 200)]  # repeat a stretch
            case 3:
                buffer[at:at] = rng.choice([b"\x00", CRLF, b"\n", b"\r", b":", b" ", b"\xff"])
            case _:
                buffer[at:at] = WEBHOOK  # a whole request in the middle of something
    return bytes(buffer)


def _cut(rng: random.Random, data: bytes) -> tuple[bytes, ...]:
    cuts = sorted(rng.sample(range(1, len(data)), max(0, min(len(data) - 1, rng.randint(0, 4)))))
    bounds = [0, *cuts, len(data)]
    return tuple(data[a:b] for a, b in itertools.pairwise(bounds) if data[a:b])


async def check(case: Case) -> bytes:
    """The property, on a server of its own (see the module docstring); returns the answer."""
    with (
        mock.patch.object(pit.web.serve, "GRACEFUL_TIMEOUT", 60.0),
        mock.patch.object(pit.web.serve, "STALL_LIMIT", STALL_LIMIT),
    ):
        async with serving(FakeBackend()) as served:
            port = int(served.url.rpartition(":")[2])
            answer = await send_case(port, case)
            assert await webhook_status(port) == 202
            # Every connection is closed now: nothing may hold shutdown for the graceful timeout.
            served.shutdown.set()
            with trio.move_on_after(SHUTDOWN_BOUND) as timer:
                await served.stopped.wait()
            assert not timer.cancelled_caught, "tasks of a closed connection held shutdown"
    return answer


# --- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", NASTY.values(), ids=NASTY.keys())
async def test_a_nasty_connection_leaves_the_server_serving(case: Case) -> None:
    await check(case)


@given(rng=st.randoms(use_true_random=False))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
async def test_a_generated_connection_leaves_the_server_serving(rng: random.Random) -> None:
    case = fuzz_case(rng)
    note(f"case: {case!r}")
    await check(case)
