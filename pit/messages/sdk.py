"""The SDK conversation: one request and one response per connection (sdk-wire-protocol.md).

Sans-io: `RequestFrame` finds where the one JSON request of a connection ends in the bytes
received so far, `decode_request` turns it into an `SdkRequest`. Whatever the bytes, both
either succeed or raise `BadRequest`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import attrs

MAX_REQUEST_BYTES = 1 << 20
MAX_DEPTH = 64
"""Nesting a request may have; a real one has two levels (the request, its params)."""


class BadRequest(Exception):
    """A request that breaks the wire protocol; answered with an error response."""


@attrs.frozen(kw_only=True)
class SdkRequest:
    method: str
    params: Mapping[str, Any]
    claimed_task: str | None = None
    """The optional `task` param our client sends (PIT_TASK_NAME): what the client says it
    is. The broker prefers what the peer process's environment says (see broker.py)."""

    def param(self, name: str, default: str | None = None, *, empty: bool = True) -> str:
        """A string param; BadRequest when it is missing, not a string, or empty (when
        `empty` is False)."""
        value = self.params.get(name, default)
        if value is None:
            raise BadRequest(f"{self.method}: missing param '{name}'")
        if not isinstance(value, str):
            raise BadRequest(f"{self.method}: param '{name}' must be a string")
        if not empty and not value:
            raise BadRequest(f"{self.method}: param '{name}' is empty")
        return value

    def optional(self, name: str) -> str | None:
        """A string param that may be absent (or null, or empty): None then."""
        return self.param(name, "") or None


@attrs.frozen(kw_only=True)
class SdkResponse:
    result: str | None = None
    error: str | None = None

    def encode(self) -> bytes:
        return json.dumps({"result": self.result, "error": self.error}).encode()


def decode_request(data: bytes) -> SdkRequest:
    """Parse one request; raise BadRequest with what is wrong."""
    try:
        raw = json.loads(data)
    except RecursionError:
        raise BadRequest(f"malformed JSON: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # bad UTF-8, bad JSON, an integer of thousands of digits
        raise BadRequest(f"malformed JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise BadRequest("a request is a JSON object with method and params")
    method, params = raw.get("method"), raw.get("params", {})
    if not isinstance(method, str) or not method:
        raise BadRequest("missing method")
    if not isinstance(params, dict):
        raise BadRequest("params must be a JSON object")
    task = params.get("task")
    return SdkRequest(
        method=method, params=params, claimed_task=task if isinstance(task, str) else None
    )


_OUTSIDE_STRING = re.compile(rb'[{}\[\]"]')
_INSIDE_STRING = re.compile(rb'["\\]')
_NOT_SPACE = re.compile(rb"[^ \t\r\n]")


class RequestFrame:
    """The bytes of a connection, fed as they arrive, until they hold one whole JSON value.

    A client may half-close after its request (the protocol's way) or just wait for the
    answer (the original broker read one JSON value, and some clients rely on it): a request
    that is an object or array is complete at its closing bracket, found by a scan that skips
    strings. Anything else is complete only at EOF. Each byte is scanned once.
    """

    def __init__(self) -> None:
        self._data = bytearray()
        self._scanned = 0
        self._container: bool | None = None
        """Whether the value is an object or array; None until its first byte arrives."""
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self.end: int | None = None
        """Where the value ends, once it is complete."""
        self.eof = False
        """Whether the client half-closed (or went away): set by the reader."""
        self.gone = False
        """Whether the connection broke before a request was whole: nobody to answer."""

    @property
    def complete(self) -> bool:
        return self.end is not None

    @property
    def received(self) -> bool:
        return bool(self._data)

    def feed(self, chunk: bytes) -> None:
        """Take more bytes; BadRequest once the request is too large or too deep."""
        self._data += chunk
        if self.end is None:
            self._scan()
        if (self.end or len(self._data)) > MAX_REQUEST_BYTES:
            raise BadRequest(f"request larger than {MAX_REQUEST_BYTES} bytes")

    def request(self) -> bytes:
        """The request: the complete value, or at EOF whatever arrived."""
        return bytes(self._data if self.end is None else self._data[: self.end])

    def _scan(self) -> None:
        data, position = self._data, self._scanned
        if self._container is None:
            first = _NOT_SPACE.search(data, position)
            if first is None:
                self._scanned = len(data)
                return
            self._container = data[first.start()] in b"{["
            position = first.start()
        if not self._container:
            return  # a scalar or garbage: decode_request says what is wrong, at EOF
        while position < len(data):
            if self._escaped:
                self._escaped, position = False, position + 1
                continue
            found = (_INSIDE_STRING if self._in_string else _OUTSIDE_STRING).search(data, position)
            if found is None:
                break
            char, position = data[found.start()], found.end()
            if self._in_string:
                if char == ord("\\"):
                    self._escaped = True
                else:  # the closing quote
                    self._in_string = False
                continue
            if char == ord('"'):
                self._in_string = True
            elif char in b"{[":
                self._depth += 1
                if self._depth > MAX_DEPTH:
                    raise BadRequest(f"malformed JSON: nested deeper than {MAX_DEPTH} levels")
            else:
                self._depth -= 1
                if self._depth == 0:
                    self.end = position
                    return
        self._scanned = len(data)
