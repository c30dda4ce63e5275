"""Pools: a number of slots (`[pools]` in pit_config.toml, `warehouse = 3`) that the tasks naming
one (`pool = "warehouse"`) share, across every run of the process (all of `pit serve`'s runs are
in its executor; `pit run` and `pit backfill` have their own).

A task takes a slot for each attempt, and gives it back when the attempt ends (a retry's wait
holds none). A slot freed goes to the waiting task of the highest `priority`, the first to ask
among equals; it is handed over, never left free for another to take in between. Waiting costs
nothing but an event per task.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator, Mapping

import attrs
import trio


@attrs.define
class _Waiter:
    priority: int
    order: int
    event: trio.Event = attrs.field(factory=trio.Event)
    gone: bool = False
    """It stopped waiting (cancelled): skipped when a slot is handed over."""

    def __lt__(self, other: _Waiter) -> bool:
        return (-self.priority, self.order) < (-other.priority, other.order)


@attrs.define
class Pool:
    name: str
    size: int
    used: int = 0
    _waiting: list[_Waiter] = attrs.field(factory=list)
    _order: itertools.count[int] = attrs.field(factory=itertools.count)

    @property
    def waiting(self) -> int:
        return sum(not w.gone for w in self._waiting)

    def take_now(self) -> bool:
        """Take a slot if one is free and nobody waits for it."""
        if self.used < self.size and not self.waiting:
            self.used += 1
            return True
        return False

    async def take(self, priority: int) -> None:
        """Wait for a slot, in turn (see the module docstring)."""
        if self.take_now():
            return
        waiter = _Waiter(priority=priority, order=next(self._order))
        heapq.heappush(self._waiting, waiter)
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.event.is_set():  # handed a slot as it was cancelled: pass it on
                self.give_back()
            else:
                waiter.gone = True
            raise

    def give_back(self) -> None:
        if self.used > self.size or not self._hand_over():  # made smaller, or nobody waits
            self.used -= 1

    def resize(self, size: int) -> None:
        """The config's size now: a bigger pool hands its new slots to the tasks waiting."""
        self.size = size
        while self.used < self.size and self._hand_over():
            self.used += 1

    def _hand_over(self) -> bool:
        """Give a slot to the first task waiting (`used` stays as it is); False: none waits."""
        while self._waiting:
            waiter = heapq.heappop(self._waiting)
            if not waiter.gone:
                waiter.event.set()
                return True
        return False

    @contextlib.asynccontextmanager
    async def slot(self, priority: int) -> AsyncIterator[None]:
        await self.take(priority)
        try:
            yield
        finally:
            self.give_back()


@attrs.define
class Pools:
    """The pools of one process, made as runs first name them."""

    _pools: dict[str, Pool] = attrs.field(factory=dict)

    def get(self, name: str, sizes: Mapping[str, int]) -> Pool | None:
        """Pool `name`, sized as `sizes` (the workspace's `[pools]`, as the run was planned)
        says now; None when it names no pool."""
        size = sizes.get(name)
        if size is None:
            return None
        pool = self._pools.get(name)
        if pool is None:
            pool = self._pools[name] = Pool(name=name, size=size)
        pool.resize(size)  # a reload of pit_config.toml resizes it
        return pool

    def usage(self) -> dict[str, tuple[int, int, int]]:
        """Pool -> (slots in use, size, tasks waiting)."""
        return {name: (p.used, p.size, p.waiting) for name, p in self._pools.items()}
