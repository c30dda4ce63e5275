"""What pit and a worker's runners say to each other about remote attempts (sans-io).

A remote attempt is described by a `RemoteAttempt`, which travels as the Dask task's argument:
never a secret in it, only a `token` that lets the runner speak for that one attempt. A worker
process keeps one TCP connection to each pit process that sends it attempts (their `hub`),
opened at its first attempt from there, and runs every attempt from that pit over it, each on a
channel of its own: a frame is a 4-byte big-endian length, a 1-byte kind, a 4-byte channel (the
runner numbers its attempts on the connection), then the payload. On an attempt's channel:

    runner -> pit   HELLO   {"key", "token", "worker"}    first, once
    pit -> runner   GO      {}                             or REFUSE {"reason"}: the channel ends
    runner -> pit   FETCH   {}                             the run's project, if not cached
    pit -> runner   TARBALL raw bytes, in chunks           an empty chunk ends it
    runner -> pit   FETCH_DATA {}                          the run's data folder, when the
    pit -> runner   DATA    raw bytes, in chunks             worker cannot see it (or ERROR)
    runner -> pit   STARTED {"pid"}                        the attempt's process runs
    runner -> pit   OUTPUT  raw bytes, masked              as the process writes
    runner -> pit   SDK     {"id", "request"}              a task's SDK request, via the shim
    pit -> runner   ANSWER  {"id", "response"}
    pit -> runner   STOP    {"reason"} / KILL {}           stop it (SIGTERM, grace, SIGKILL) / now
    runner -> pit   DATA    raw bytes, in chunks           what the attempt wrote there
    runner -> pit   EXIT    {"returncode", "timed_out", "error"}   last: the channel ends

A connection that breaks ends every attempt on it: pit counts them lost, the worker kills them.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import re
import struct
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

MAX_FRAME = 16 << 20
"""Bytes a frame may hold: output is sent in smaller chunks, and an SDK answer is below it."""
_HEADER = struct.Struct(">IBI")
Frame = tuple["Kind", int, bytes]
"""A frame as read: its kind, its channel, its payload."""


class Kind(enum.IntEnum):
    HELLO = 1
    GO = 2
    REFUSE = 3
    STARTED = 4
    OUTPUT = 5
    SDK = 6
    ANSWER = 7
    STOP = 8
    KILL = 9
    EXIT = 10
    FETCH = 11
    TARBALL = 12
    FETCH_DATA = 13
    DATA = 14
    ERROR = 15


_KINDS = frozenset(Kind)


class WireError(Exception):
    """Bytes that are no frame of this protocol: the connection is dropped."""


PROTOCOL = 2
"""The version of what pit and its runners say: both ends must speak the same."""


@attrs.frozen(kw_only=True)
class RemoteAttempt:
    """One attempt of a task, as a worker's runner needs it. Paths of pit's machine appear in
    `argv` and `env` as the placeholders of `PLACES`, which the runner replaces with its own.

    It travels as JSON bytes (`encode`): Dask's scheduler unpickles every task, and plain bytes
    need nothing of pit's there, nor the same version."""

    key: str
    """run/task/attempt: unique, Dask's key for it too."""
    token: str
    hub: tuple[str, int]
    """Where the runner reaches pit."""
    snapshot: str
    """The sha256 of the run's project tarball: a worker fetches it from pit once, and keeps
    it for every attempt of the same code."""
    argv: tuple[str, ...]
    cwd: str
    """Relative to the project folder."""
    env: Mapping[str, str]
    """The PIT_* variables (and PYTHONPATH) of the attempt; the worker's own environment
    gives the rest."""
    timeout: float | None
    grace: float
    stage_data: bool = False
    """Send the run's data folder to the worker and back even if the worker sees its path."""
    uv_project: bool = False
    """A Python task: its uv environment is resolved on the worker, cached there."""

    def encode(self) -> bytes:
        fields = attrs.asdict(self, recurse=False)
        return json.dumps({"protocol": PROTOCOL, **fields}).encode()

    @classmethod
    def decode(cls, data: bytes) -> RemoteAttempt:
        """WireError when `data` is no attempt of this pit's protocol."""
        raw = fields(data)
        if raw.pop("protocol", None) != PROTOCOL:
            raise WireError(
                "the attempt comes from a pit of another version: install the same pit on the "
                "workers as where runs start"
            )
        if not re.fullmatch("[0-9a-f]{64}", str(raw.get("snapshot"))):
            raise WireError("an attempt whose project digest is not a sha256")
        try:
            hub_host, hub_port = raw.pop("hub")
            argv = tuple(raw.pop("argv"))
            return cls(**raw, hub=(str(hub_host), int(hub_port)), argv=argv)
        except (TypeError, ValueError, KeyError) as exc:
            raise WireError(f"an attempt that does not decode: {exc}") from None


PROJECT = "{pit:project}"
DATA = "{pit:data}"
SDK = "{pit:sdk}"
PLACES = (PROJECT, DATA, SDK)


def attempt_key(run_id: str, task: str, attempt: int) -> str:
    return f"{run_id}/{task}/{attempt}"


def sign(secret: bytes, key: str) -> str:
    """The token of attempt `key`, as only the holder of `secret` (the hub) can make it."""
    return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()


def token_ok(secret: bytes, key: str, token: object) -> bool:
    return isinstance(token, str) and hmac.compare_digest(sign(secret, key), token)


CHUNK = 1 << 20
"""Bytes of a tarball or of staged data per frame."""


def chunked(data: bytes) -> Iterator[bytes]:
    """`data` as the payloads of TARBALL or DATA frames: chunks, then an empty one (the end)."""
    for start in range(0, len(data), CHUNK):
        yield data[start : start + CHUNK]
    yield b""


def frame(kind: Kind, channel: int, payload: bytes | Mapping[str, Any] = b"") -> bytes:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return _HEADER.pack(len(data), kind, channel) + data


class Reader:
    """Frames out of a byte stream, fed as it arrives. `limit`: the largest frame taken (a
    stranger's first frame is kept small: nobody makes pit hold 16 MiB by saying so)."""

    def __init__(self, limit: int = MAX_FRAME) -> None:
        self._buffer = bytearray()
        self.limit = limit

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= _HEADER.size:
            length, kind, channel = _HEADER.unpack_from(self._buffer)
            if length > self.limit:
                raise WireError(f"a frame of {length} bytes (at most {self.limit})")
            if len(self._buffer) < _HEADER.size + length:
                break
            try:
                payload = bytes(self._buffer[_HEADER.size : _HEADER.size + length])
                frames.append((Kind(kind), channel, payload))
            except ValueError:
                raise WireError(f"unknown frame kind {kind}") from None
            del self._buffer[: _HEADER.size + length]
        return frames


def fields(payload: bytes) -> dict[str, Any]:
    """A JSON frame's object; WireError for anything else."""
    try:
        value = json.loads(payload)
    except ValueError as exc:
        raise WireError(f"a frame that is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise WireError("a frame that is not a JSON object")
    return value
