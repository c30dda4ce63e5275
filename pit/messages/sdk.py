"""The SDK conversation: one request and one response per connection (sdk-wire-protocol.md)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

MAX_REQUEST_BYTES = 1 << 20


class BadRequest(Exception):
    """A request that breaks the wire protocol; answered with an error response."""


@attrs.frozen(kw_only=True)
class SdkRequest:
    method: str
    params: Mapping[str, Any]
    task: str | None = None
    """The asking task: the optional `task` param of our client, or the peer process's
    PIT_TASK_NAME."""

    def param(self, name: str, default: str | None = None) -> str:
        value = self.params.get(name, default)
        if value is None:
            raise BadRequest(f"{self.method}: missing param '{name}'")
        if not isinstance(value, str):
            raise BadRequest(f"{self.method}: param '{name}' must be a string")
        return value


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
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"malformed JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise BadRequest("a request is a JSON object with method and params")
    method, params = raw.get("method"), raw.get("params", {})
    if not isinstance(method, str) or not method:
        raise BadRequest("missing method")
    if not isinstance(params, dict):
        raise BadRequest("params must be a JSON object")
    task = params.get("task")
    return SdkRequest(method=method, params=params, task=task if isinstance(task, str) else None)
