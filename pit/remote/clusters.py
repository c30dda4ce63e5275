"""The Dask clusters of one pit process, as cheap to import as a module can be: `pit run`
imports this at start-up, and a cluster's client (`pit.remote.cluster`, Dask itself) is
imported only when a run names one."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import attrs
import trio

from pit.errors import PitError
from pit.spec.workspace import ExecutorConfig, ExecutorKind

if TYPE_CHECKING:
    from pit.remote.cluster import DaskCluster


class RemoteError(PitError):
    """The cluster cannot take the attempt (unreachable, refused); it fails saying why."""


@attrs.define(eq=False)
class Clusters:
    """The clusters of one pit process (`pit run`, pit serve's executor): each opened at the
    first run that needs it, kept for the next, closed when the process ends."""

    nursery: trio.Nursery
    _open: dict[tuple[str | None, ...], DaskCluster] = attrs.field(factory=dict)
    """By scheduler and callback: a reload that changes another setting keeps its cluster."""
    _opening: trio.Lock = attrs.field(factory=trio.Lock)

    async def get(self, config: ExecutorConfig) -> DaskCluster | None:
        """The cluster of `config`; None for the local executor. RemoteError when it cannot
        be opened (then the run fails saying why)."""
        if config.kind is ExecutorKind.LOCAL:
            return None
        where = (config.scheduler, config.scheduler_file, config.callback)
        async with self._opening:
            if where not in self._open:
                self._open[where] = await self.nursery.start(self._hold, config)
        return self._open[where]

    async def _hold(
        self, config: ExecutorConfig, *, task_status: trio.TaskStatus[DaskCluster]
    ) -> None:
        from pit.remote.cluster import DaskCluster

        async with DaskCluster.open(config) as cluster:
            task_status.started(cluster)
            await trio.sleep_forever()


@contextlib.asynccontextmanager
async def open_clusters() -> AsyncIterator[Clusters]:
    """This process's `Clusters`, all closed at the end of the block."""
    async with trio.open_nursery() as nursery:
        yield Clusters(nursery)
        nursery.cancel_scope.cancel()
