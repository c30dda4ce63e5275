"""pit's client of a Dask distributed cluster (`[executor] kind = "dask"`).

The scheduling stays pit's actors; Dask only places each attempt's process on a worker. Dask's
asynchronous API is asyncio's, so pit uses its synchronous `Client` (which runs its own loop in
a thread of its own) and calls it from trio through one bridge (`trio.to_thread` under a
limiter of one), never two event loops in one thread. The attempts ready together cross it
together: one `Client.map` per batch (per set of resources), one graph for the scheduler.
Whether a Dask task ended is read off its future's state every `_WATCH` seconds, not by a
callback per future (each costs Dask a coroutine and pit two thread hops): that only matters
for an attempt whose runner never reached pit, or whose end never came.

Each attempt is one Dask task, keyed run/task/attempt, `pure=False`, no Dask retries (pit
retries, with its own waits and records). What the attempt says while it runs comes back over
its worker's connection to this process (`pit.remote.hub`), and so does the run's project: a
tarball named by its content, which a worker fetches once and keeps for every attempt of that
code (no data of pit's lives in Dask, so a worker's death loses nothing the next attempt needs).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import socket
import urllib.parse
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs
import trio

from pit.remote.clusters import RemoteError
from pit.remote.hub import Hub, Link
from pit.remote.tarballs import pack_project
from pit.remote.wire import PROJECT, SDK, RemoteAttempt
from pit.runners.command import SDK_PATH, ProcessLaunch
from pit.spec.workspace import ExecutorConfig

T = TypeVar("T")
_PIT_ENV = ("PIT_", "PYTHONPATH")
"""What of a launch's environment an attempt takes along: the rest is the worker's own."""


_WATCH = 0.5
_BURST = 0.05
_LINGER = 0.002
"""Seconds the submitter waits for more attempts to queue when its last batch went less than
`_BURST` ago: a burst of ready tasks (a fan-out starting) then goes in fewer, bigger batches,
and a lone attempt goes at once."""
"""Seconds between looks at the states of the attempts' Dask tasks."""
CANCEL_WAIT = 10.0
"""Seconds to tell Dask to drop an attempt that did not end by itself (a gone scheduler may
never answer)."""


@attrs.define(eq=False)
class Submission:
    """An attempt handed to Dask; `ended` once Dask's task did (finished, failed, cancelled)."""

    cluster: DaskCluster
    attempt: RemoteAttempt
    resources: Mapping[str, float]
    future: Any = None
    error: str | None = None
    """Why Dask did not take it."""
    abandoned: bool = False
    """Nobody follows it any more: not to be submitted, or to be cancelled once it is."""
    link: Link | None = None
    """Told when Dask's task ended (`Link.task_ended`)."""
    submitted: trio.Event = attrs.field(factory=trio.Event)
    ended: bool = False

    async def outcome(self) -> str:
        """Once `ended`: what became of the Dask task, in words."""
        status = self.future.status
        try:
            if status == "finished":
                result = await self.cluster._call(self.future.result)
                if isinstance(result, dict):
                    return str(result.get("error") or result.get("refused") or "ended")
                return "ended"
            if status == "error":
                error = await self.cluster._call(self.future.exception)
                return f"the cluster failed it: {type(error).__name__}: {error}"
        except Exception as exc:  # the cluster cannot say: say that
            return f"the cluster lost it ({status}: {type(exc).__name__}: {exc})"
        if self.cluster._client_status() != "running":
            return f"the Dask scheduler at {self.cluster.address} was lost while it waited"
        return f"the cluster dropped it ({status})"

    async def cancel(self) -> None:
        if self.future is not None and not self.ended:
            await self.cluster._call(self.future.cancel)

    def release(self) -> None:
        """Nobody waits for its end any more: the cluster stops watching it."""
        self.cluster._live.discard(self)


@attrs.define(eq=False)
class DaskCluster:
    config: ExecutorConfig
    hub: Hub
    _client: Any = None
    _connecting: trio.Lock = attrs.field(factory=trio.Lock)
    _failed: tuple[float, str] = (0.0, "")
    """When the last connect failed, and how (empty: it did not)."""
    _nonce: str = attrs.field(factory=lambda: os.urandom(4).hex())
    """Makes this process's Dask keys its own: two pits may share a cluster and a run id."""
    _bridge: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(1))
    _queued: list[Submission] = attrs.field(factory=list)
    _wake: trio.Event = attrs.field(factory=trio.Event)
    _live: set[Submission] = attrs.field(factory=set)
    """Submitted, and not known to have ended."""

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, config: ExecutorConfig) -> AsyncIterator[DaskCluster]:
        """The cluster of `config`, connected at its first attempt, closed at the end."""
        try:
            import distributed  # noqa: F401  (1.5 s of imports: only when a cluster is used)
        except ImportError:
            raise RemoteError(
                'executor kind "dask" needs Dask distributed: install pit with its dask extra '
                "(uv add 'pit[dask]', or pip install 'pit[dask]')"
            ) from None
        host, port = _callback(config)
        async with trio.open_nursery() as nursery:
            hub = Hub(host, port)
            try:
                await nursery.start(hub.run)
            except OSError as exc:
                raise RemoteError(
                    f"cannot listen at {host}:{port} for the Dask workers: {exc.strerror or exc};"
                    " set callback in [executor] to an address of this machine"
                ) from None
            cluster = cls(config, hub)
            nursery.start_soon(cluster._submit_queued)
            nursery.start_soon(cluster._watch)
            try:
                yield cluster
            finally:
                with trio.CancelScope(shield=True):
                    await cluster._close()
                nursery.cancel_scope.cancel()

    @property
    def address(self) -> str:
        return self.config.scheduler or f"the scheduler of {self.config.scheduler_file}"

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(function, *args, limiter=self._bridge)

    async def client(self) -> Any:
        """The connected client; RemoteError when the scheduler cannot be reached in
        `connect_timeout`. The attempts waiting meanwhile get that same error at once, and so
        does every attempt for `connect_timeout` after it (then one tries again): a scheduler
        that is down fails a run's attempts together, not one per timeout."""
        async with self._connecting:
            failed_at, error = self._failed
            if error and trio.current_time() - failed_at < self.config.connect_timeout:
                raise RemoteError(error)
            if self._client is None:
                from distributed import Client

                connect = functools.partial(
                    Client,
                    self.config.scheduler,
                    scheduler_file=self.config.scheduler_file,
                    timeout=self.config.connect_timeout,
                    set_as_default=False,
                )
                try:
                    self._client = await self._call(connect)
                except (OSError, TimeoutError, ValueError) as exc:
                    error = f"cannot reach the Dask scheduler at {self.address}: {exc}"
                    self._failed = (trio.current_time(), error)
                    raise RemoteError(error) from None
        return self._client

    def _client_status(self) -> str:
        return "closed" if self._client is None else str(self._client.status)

    async def _close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(Exception):  # already gone: nothing to close
                await self._call(client.close)

    async def submit(
        self, attempt: RemoteAttempt, resources: Mapping[str, float], link: Link | None = None
    ) -> Submission:
        """Hand `attempt` to Dask (with the others ready meanwhile), `link` to be told when its
        task ended; RemoteError if Dask would not take it."""
        submission = Submission(self, attempt, resources, link=link)
        self._queued.append(submission)
        self._wake.set()
        try:
            await submission.submitted.wait()
        except BaseException:  # cancelled: the bridge drops it, or Dask must
            submission.abandoned = True
            if submission.future is not None:
                with trio.move_on_after(CANCEL_WAIT, shield=True):
                    await submission.cancel()
                submission.release()
            raise
        if submission.error is not None:
            raise RemoteError(submission.error)
        return submission

    async def _submit_queued(self) -> None:
        """The bridge's one submitter: whatever queued since its last batch, as one batch (one
        hop to the bridge's thread, one graph for the scheduler)."""
        last = -math.inf
        while True:
            await self._wake.wait()
            if trio.current_time() - last < _BURST:  # in a burst: let more of it queue
                await trio.sleep(_LINGER)
            self._wake = trio.Event()
            batch = [s for s in self._queued if not s.abandoned]
            self._queued = []
            if batch:
                last = trio.current_time()
                await self._submit_batch(batch)

    async def _submit_batch(self, batch: list[Submission]) -> None:
        try:
            client = await self.client()
            futures = await self._call(self._map, client, batch)
        except RemoteError as exc:
            error: str | None = str(exc)
        except Exception as exc:
            if self._client_status() != "running":  # it lost its scheduler: connect again
                await self._close()
            error = (
                f"the Dask scheduler at {self.address} did not take the attempt: "
                f"{type(exc).__name__}: {exc}"
            )
        else:
            error = None
            dropped = []  # stopped while the batch went: Dask must drop them
            for submission, future in zip(batch, futures, strict=True):
                submission.future = future
                if submission.abandoned:
                    dropped.append(future)
                else:
                    self._live.add(submission)
            if dropped:
                with contextlib.suppress(Exception), trio.move_on_after(CANCEL_WAIT):
                    await self._call(client.cancel, dropped)
        for submission in batch:
            submission.error = error
            submission.submitted.set()

    def _map(self, client: Any, batch: list[Submission]) -> list[Any]:
        """`batch` submitted, one `Client.map` per set of resources; their futures, in order
        (in the bridge's thread)."""
        from pit.dask import run_attempt

        groups: dict[tuple[tuple[str, float], ...], list[int]] = {}
        for index, submission in enumerate(batch):
            groups.setdefault(tuple(sorted(submission.resources.items())), []).append(index)
        futures: list[Any] = [None] * len(batch)
        for resources, indexes in groups.items():
            attempts = [batch[i].attempt for i in indexes]
            mapped = client.map(
                run_attempt,
                [attempt.encode() for attempt in attempts],
                key=[f"pit-{self._nonce}/{attempt.key}" for attempt in attempts],
                pure=False,
                retries=0,
                resources=dict(resources) or None,
            )
            for index, future in zip(indexes, mapped, strict=True):
                futures[index] = future
        return futures

    async def _watch(self) -> None:
        """Tell the followers of the submissions whose Dask task ended (a future's state is
        written by the client's loop thread; reading it is safe from any)."""
        while True:
            await trio.sleep(_WATCH)
            for submission in [s for s in self._live if s.future.status != "pending"]:
                submission.ended = True
                if submission.link is None or submission.link.task_ended():
                    self._live.discard(submission)


@attrs.define(eq=False)
class RemoteRun:
    """A run's tasks on the cluster: the run's project, packed once, and where its paths are
    on pit's machine (so the worker can put its own in their place)."""

    cluster: DaskCluster
    project: Path
    source: Path
    data: Path
    grace: float
    stage_data: bool
    _tarball: tuple[str, bytes] | None = None
    _packing: trio.Lock = attrs.field(factory=trio.Lock)

    async def submit(
        self,
        link: Link,
        launch: ProcessLaunch,
        time_limit: float | None,
        resources: Mapping[str, float],
    ) -> Submission:
        async with self._packing:
            if self._tarball is None:
                try:
                    self._tarball = await trio.to_thread.run_sync(pack_project, self.project)
                except OSError as exc:
                    raise RemoteError(f"cannot pack the run's project: {exc}") from None
        digest, link.tarball = self._tarball
        link.data_dir = self.data
        attempt = RemoteAttempt(
            key=link.key,
            token=link.token,
            hub=self.cluster.hub.address,
            snapshot=digest,
            argv=tuple(self._portable(arg) for arg in launch.argv),
            cwd=str(launch.cwd.relative_to(self.project)),
            env={
                name: self._portable(value)
                for name, value in launch.env.items()
                if name.startswith(_PIT_ENV) and name != "PIT_SOCKET"
            },
            timeout=time_limit,
            grace=self.grace,
            stage_data=self.stage_data,
            uv_project=launch.argv[:2] == ("uv", "run"),
        )
        return await self.cluster.submit(attempt, resources, link)

    def _portable(self, text: str) -> str:
        """`text` with pit's paths as the placeholders the worker fills in."""
        places = [(str(self.project), PROJECT), (str(self.source), PROJECT)]
        if SDK_PATH is not None:
            places.append((str(SDK_PATH), SDK))
        for path, placeholder in sorted(places, key=lambda p: len(p[0]), reverse=True):
            text = text.replace(path, placeholder)
        return text


def _callback(config: ExecutorConfig) -> tuple[str, int]:
    """Where the workers reach this process: `callback`, else the address of the interface
    that routes to the scheduler (found without sending a packet), any free port."""
    if config.callback:  # "host" or "host:port", as the config's reader checked
        host, _, port = config.callback.partition(":")
        return host, int(port or 0)
    if config.scheduler is None:
        return "127.0.0.1", 0
    target = urllib.parse.urlsplit(config.scheduler).hostname or "127.0.0.1"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((target, 9))
            return str(probe.getsockname()[0]), 0
    except OSError:
        return "127.0.0.1", 0
