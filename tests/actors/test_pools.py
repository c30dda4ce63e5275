"""A pool's slots: taken in turn by priority then arrival, handed over when freed, given back
by a waiter that stops waiting. Plain trio, no process."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from pit.actors.pools import Pool, Pools


async def test_slots_go_by_priority_then_arrival(autojump_clock: trio.testing.MockClock) -> None:
    pool = Pool(name="warehouse", size=1)
    order: list[str] = []

    async def task(name: str, priority: int, arrive: float) -> None:
        await trio.sleep(arrive)
        async with pool.slot(priority):
            order.append(name)
            await trio.sleep(10)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(task, "first", 0, 0)
        nursery.start_soon(task, "low-early", 0, 1)
        nursery.start_soon(task, "high-late", 5, 2)
        nursery.start_soon(task, "low-late", 0, 3)
        await trio.sleep(4)
        assert (pool.used, pool.waiting) == (1, 3)
    assert order == ["first", "high-late", "low-early", "low-late"]
    assert (pool.used, pool.waiting) == (0, 0)


async def test_a_waiter_that_stops_waiting_takes_no_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pool = Pool(name="p", size=1)
    await pool.take(0)
    with trio.move_on_after(1):
        await pool.take(0)
    assert pool.waiting == 0
    pool.give_back()
    assert pool.used == 0
    assert pool.take_now()


async def test_a_slot_handed_to_a_cancelled_waiter_is_passed_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pool = Pool(name="p", size=1)
    await pool.take(0)
    got: list[str] = []
    async with trio.open_nursery() as nursery:

        async def wait(name: str, scope: trio.CancelScope | None = None) -> None:
            with scope or trio.CancelScope():
                await pool.take(0)
                got.append(name)

        doomed = trio.CancelScope()
        nursery.start_soon(wait, "doomed", doomed)
        await trio.sleep(1)
        nursery.start_soon(wait, "next")
        await trio.sleep(1)
        doomed.cancel()  # it is cancelled, and before it runs...
        pool.give_back()  # ...the slot is handed to it: it must pass it on
    assert got == ["next"]
    assert (pool.used, pool.waiting) == (1, 0)


@pytest.mark.parametrize(("size", "expected"), [(3, 3), (1, 1)])
async def test_pools_are_made_as_named_and_resized_by_the_config(size: int, expected: int) -> None:
    pools = Pools()
    first = pools.get("warehouse", {"warehouse": 2})
    assert first is not None
    assert pools.get("warehouse", {"warehouse": size}) is first
    assert first.size == expected
    assert pools.get("nosuch", {"warehouse": 2}) is None
    assert pools.usage() == {"warehouse": (0, expected, 0)}


async def test_a_smaller_pool_lets_a_slot_go_rather_than_hand_it_over() -> None:
    pool = Pool(name="p", size=2)
    assert pool.take_now()
    assert pool.take_now()
    pool.size = 1
    pool.give_back()
    assert not pool.take_now()  # one in use is all a pool of one has
    pool.give_back()
    assert pool.take_now()


async def test_a_bigger_pool_hands_its_new_slots_to_the_tasks_waiting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pools = Pools()
    pool = pools.get("p", {"p": 1})
    assert pool is not None
    running: list[int] = []

    async def task(n: int) -> None:
        async with pool.slot(0):
            running.append(n)
            await trio.sleep(100)

    async with trio.open_nursery() as nursery:
        for n in range(4):
            nursery.start_soon(task, n)
        await trio.sleep(1)
        assert len(running) == 1
        pools.get("p", {"p": 3})  # pit_config.toml reloaded
        await trio.sleep(1)
        assert len(running) == 3
        assert (pool.used, pool.waiting) == (3, 1)
