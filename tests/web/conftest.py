"""The real web app served by real hypercorn on 127.0.0.1, in front of a `FakeBackend` (a fake
supervisor answering the app's requests).

`served` starts `serve_app(create_app(backend.handle), port=0)` for a test and stops it through its
shutdown event afterwards (failing the test if that hangs); `client` is an `httpx.AsyncClient`
on it, limited to one connection so that sequential requests share it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import attrs
import httpx
import pytest
import trio

from pit.web import create_app, serve_app

from .fakebackend import FakeBackend

HANG_GUARD = 10.0
"""Seconds a step may take before the test calls it a hang (each takes milliseconds)."""


@attrs.define
class Served:
    backend: FakeBackend
    url: str
    shutdown: trio.Event
    stopped: trio.Event
    """Set when `serve_app` has returned."""


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@contextlib.asynccontextmanager
async def serving(backend: FakeBackend) -> AsyncIterator[Served]:
    """`serve_app` on a free port of 127.0.0.1 for the block; stopped by its shutdown event after
    it (if the block has not), failing the test if stopping hangs."""
    shutdown, stopped = trio.Event(), trio.Event()

    async def serve(task_status: trio.TaskStatus[int]) -> None:
        app = create_app(backend.handle)
        await serve_app(app, host="127.0.0.1", port=0, shutdown=shutdown, task_status=task_status)
        stopped.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(backend.answer_requests)
        with trio.fail_after(HANG_GUARD):
            port = await nursery.start(serve)
        yield Served(backend, f"http://127.0.0.1:{port}", shutdown, stopped)
        shutdown.set()
        with trio.fail_after(HANG_GUARD):
            await stopped.wait()
        nursery.cancel_scope.cancel()  # the fake supervisor


@pytest.fixture
async def served(backend: FakeBackend) -> AsyncIterator[Served]:
    async with serving(backend) as served:
        yield served


@pytest.fixture
async def client(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with one_connection_client(served.url) as client:
        yield client


def one_connection_client(url: str) -> httpx.AsyncClient:
    """A client whose requests, one after another, all go over one kept-alive connection."""
    return httpx.AsyncClient(
        base_url=url, limits=httpx.Limits(max_connections=1), timeout=HANG_GUARD
    )
