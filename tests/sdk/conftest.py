"""Fixtures for the task-side SDK (sdk/python/pit_sdk), tested in-process.

`pit_sdk` is imported from the source tree (sdk/python is put on sys.path). `broker` is a tiny
SDK broker on a Unix socket, in a thread, speaking the wire protocol to the letter: it reads a
request to EOF, records it, answers one JSON object and closes. `tcp_broker` is the same on TCP.
Every test starts with no PIT_* variables, so a run inside a pit task sees the same thing.
"""

from __future__ import annotations

import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .fakebroker import FakeBroker

SDK_DIR = Path(__file__).resolve().parents[2] / "sdk" / "python"
if str(SDK_DIR) not in sys.path:
    sys.path.insert(0, str(SDK_DIR))


@pytest.fixture(autouse=True)
def no_pit_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in (
        "PIT_SOCKET",
        "PIT_DATA_DIR",
        "PIT_TASK_NAME",
        "PIT_RUN_ID",
        "PIT_DAG_NAME",
        "PIT_WORKSPACE",
    ):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temporary directory with a short path: a Unix socket path must fit in ~100 bytes, which
    pytest's tmp_path (named after the test) does not promise."""
    with tempfile.TemporaryDirectory(prefix="pit-sdk-") as directory:
        yield Path(directory)


@pytest.fixture
def broker(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBroker]:
    """A fake broker on a Unix socket, with PIT_SOCKET pointing at it."""
    path = str(short_tmp / "sdk.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()
    fake = FakeBroker(listener, path)
    monkeypatch.setenv("PIT_SOCKET", path)
    yield fake
    fake.close()


@pytest.fixture
def tcp_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBroker]:
    """A fake broker on TCP 127.0.0.1, with PIT_SOCKET=host:port."""
    listener = socket.create_server(("127.0.0.1", 0))
    host, port = listener.getsockname()
    fake = FakeBroker(listener, f"{host}:{port}")
    monkeypatch.setenv("PIT_SOCKET", fake.address)
    yield fake
    fake.close()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A run's data directory, with PIT_DATA_DIR pointing at it."""
    directory = tmp_path / "data"
    directory.mkdir()
    monkeypatch.setenv("PIT_DATA_DIR", str(directory))
    return directory
