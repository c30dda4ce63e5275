"""A tiny SDK broker for the client's tests: a thread serving a Unix or TCP socket that speaks
the wire protocol to the letter. It reads each request to EOF, records it, answers one JSON
object and closes the connection.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable
from typing import Any

HALF_CLOSE_WAIT = 5.0
"""Seconds the fake broker waits for the client's EOF before it answers anyway (and records that
the client never half-closed)."""


class Exchange:
    """One connection as the broker saw it."""

    def __init__(self, raw: bytes, saw_eof: bool) -> None:
        self.raw = raw
        """Every byte the client sent."""
        self.saw_eof = saw_eof
        """Whether the client half-closed (the broker read EOF) before the broker answered."""

    @property
    def request(self) -> Any:
        return json.loads(self.raw)


def ok(result: str) -> bytes:
    return json.dumps({"result": result, "error": None}).encode()


def failed(error: str) -> bytes:
    return json.dumps({"result": None, "error": error}).encode()


class FakeBroker:
    """A one-request-per-connection broker; `answer` turns a request's bytes into the reply."""

    def __init__(self, listener: socket.socket, address: str) -> None:
        self.address = address
        self.exchanges: list[Exchange] = []
        self.answer: Callable[[bytes], bytes] = lambda raw: ok("ok")
        self._listener = listener
        self._listener.settimeout(0.01)  # how soon close() stops the thread
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-sdk-broker", daemon=True)
        self._thread.start()

    def reply(self, answer: bytes) -> None:
        """Answer every request with these bytes."""
        self.answer = lambda raw: answer

    def only_exchange(self) -> Exchange:
        assert len(self.exchanges) == 1, f"expected one connection, got {len(self.exchanges)}"
        return self.exchanges[0]

    def only_request(self) -> Any:
        return self.only_exchange().request

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            with connection:
                self._exchange(connection)

    def _exchange(self, connection: socket.socket) -> None:
        connection.settimeout(HALF_CLOSE_WAIT)
        chunks, saw_eof = [], False
        try:
            while chunk := connection.recv(4096):
                chunks.append(chunk)
            saw_eof = True
        except TimeoutError:
            pass
        raw = b"".join(chunks)
        self.exchanges.append(Exchange(raw, saw_eof))
        with contextlib.suppress(OSError):  # the client went away (a test of lost connections)
            connection.sendall(self.answer(raw))
