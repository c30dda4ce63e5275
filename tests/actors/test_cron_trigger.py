"""The cron trigger on trio's fake clock: what it asks the supervisor for, and when.

The trigger's wall clock is `TrioWallClock`, which reads trio's (fake) clock, so a simulated week
of quarter hours takes well under a second. A receive channel stands in for the supervisor's
inbox; each `RunRequested` is stamped with the wall-clock time it arrived.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import attrs
import pytest
import trio
import trio.testing

from pit.actors.cron import CATCHUP_RETRY, CronTrigger
from pit.messages.run import RunEnded, RunRecord
from pit.messages.trigger import RunRequested, SupervisorInbox
from pit.messages.webhook import RunAccepted, RunRejected, RunRequestAnswer

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")
MONDAY = dt.datetime(2024, 5, 6, 0, 0, tzinfo=UTC)


@attrs.define
class TrioWallClock:
    """A wall clock reading `start` when made, then following trio's clock; `jump` moves it the
    way NTP or a resumed virtual machine moves a real one (trio's clock does not move)."""

    start: dt.datetime
    """An aware datetime in UTC: adding a timedelta to it is adding real time."""
    origin: float = attrs.field(factory=trio.current_time)
    jumped: dt.timedelta = dt.timedelta(0)

    def now(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=trio.current_time() - self.origin) + self.jumped

    def jump(self, delta: dt.timedelta) -> None:
        self.jumped += delta


@attrs.frozen
class Fire:
    request: RunRequested
    arrived: dt.datetime
    """The wall-clock time at which the supervisor received the request."""

    @property
    def scheduled(self) -> dt.datetime:
        assert self.request.scheduled_time is not None
        return self.request.scheduled_time

    @property
    def lateness(self) -> dt.timedelta:
        return self.arrived - self.scheduled


class Inbox:
    """The supervisor's inbox as the trigger sees it, read one request at a time."""

    def __init__(self, clock: TrioWallClock, receive: trio.MemoryReceiveChannel[SupervisorInbox]):
        self.clock = clock
        self.receive = receive

    async def next(self) -> Fire:
        message = await self.receive.receive()
        assert isinstance(message, RunRequested)
        return Fire(message, self.clock.now())

    async def take(self, count: int) -> list[Fire]:
        return [await self.next() for _ in range(count)]


@attrs.define
class Running:
    clock: TrioWallClock
    inbox: Inbox
    scope: trio.CancelScope


async def start_trigger(
    nursery: trio.Nursery,
    schedule: str,
    tz: dt.tzinfo,
    start: dt.datetime,
    *,
    catchup: dt.timedelta | None = None,
    last_fire: dt.datetime | None = None,
) -> Running:
    """A CronTrigger for DAG "etl" running in `nursery`, its clock reading `start` now."""
    clock = TrioWallClock(start.astimezone(UTC))
    send, receive = trio.open_memory_channel[SupervisorInbox](0)
    trigger = CronTrigger(
        dag="etl",
        schedule=schedule,
        tz=tz,
        clock=clock,
        supervisor=send,
        catchup_window=catchup,
        last_fire=lambda: last_fire,
    )
    scope = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[None]) -> None:
        with scope:
            await trigger.run(task_status=task_status)

    await nursery.start(run)
    return Running(clock, Inbox(clock, receive), scope)


def utc(fires: list[Fire]) -> list[dt.datetime]:
    """The scheduled times as UTC instants: aware datetimes sharing a tzinfo compare by wall
    clock, ignoring `fold`, which would hide a fire in the wrong half of a repeated hour."""
    return [fire.scheduled.astimezone(UTC) for fire in fires]


def assert_on_time(fires: list[Fire]) -> None:
    """Never early; late by no more than the rounding of the fake clock to microseconds."""
    for fire in fires:
        assert fire.arrived >= fire.scheduled, f"{fire.scheduled} fired early, at {fire.arrived}"
        assert fire.lateness < dt.timedelta(milliseconds=1), f"{fire.scheduled} fired late"


async def test_a_simulated_week_of_quarter_hours(autojump_clock: trio.testing.MockClock) -> None:
    week = 7 * 24 * 4
    async with trio.open_nursery() as nursery:
        running = await start_trigger(nursery, "*/15 * * * *", UTC, MONDAY)
        fires = await running.inbox.take(week)
        nursery.cancel_scope.cancel()

    expected = [MONDAY + dt.timedelta(minutes=15 * n) for n in range(1, week + 1)]
    assert utc(fires) == expected
    assert {(f.request.dag, f.request.trigger) for f in fires} == {("etl", "cron")}
    assert all(f.request.reply is None and f.request.seed_files == () for f in fires)
    assert_on_time(fires)


async def test_the_first_fire_is_the_next_one_not_one_at_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Fires missed while pit was down are not replayed: it counts from when it starts."""
    async with trio.open_nursery() as nursery:
        start = MONDAY.replace(hour=10, minute=7, second=30)
        running = await start_trigger(nursery, "*/15 * * * *", UTC, start)
        fires = await running.inbox.take(2)
        nursery.cancel_scope.cancel()

    assert utc(fires) == [MONDAY.replace(hour=10, minute=15), MONDAY.replace(hour=10, minute=30)]
    assert_on_time(fires)


async def test_daily_in_berlin_across_the_autumn_change(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """02:30 happens twice on 27 October 2024 in Berlin: the DAG runs once, at the first."""
    async with trio.open_nursery() as nursery:
        start = dt.datetime(2024, 10, 25, 12, 0, tzinfo=BERLIN)
        running = await start_trigger(nursery, "30 2 * * *", BERLIN, start)
        fires = await running.inbox.take(4)
        nursery.cancel_scope.cancel()

    assert utc(fires) == [
        dt.datetime(2024, 10, 26, 0, 30, tzinfo=UTC),  # 02:30 CEST
        dt.datetime(2024, 10, 27, 0, 30, tzinfo=UTC),  # 02:30 CEST, the first of two
        dt.datetime(2024, 10, 28, 1, 30, tzinfo=UTC),  # 02:30 CET: 25 hours later
        dt.datetime(2024, 10, 29, 1, 30, tzinfo=UTC),
    ]
    assert [f.scheduled.astimezone(BERLIN).strftime("%d %H:%M") for f in fires] == [
        "26 02:30",
        "27 02:30",
        "28 02:30",
        "29 02:30",
    ]
    assert_on_time(fires)


async def test_quarter_hours_in_berlin_fire_once_per_wall_clock_minute(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Through the repeated hour (02:00-03:00 twice): each wall-clock minute fires once."""
    async with trio.open_nursery() as nursery:
        start = dt.datetime(2024, 10, 27, 1, 50, tzinfo=BERLIN)
        running = await start_trigger(nursery, "*/15 * * * *", BERLIN, start)
        fires = await running.inbox.take(6)
        nursery.cancel_scope.cancel()

    walls = [f.scheduled.astimezone(BERLIN).strftime("%H:%M%z") for f in fires]
    first_pass = ["02:00+0200", "02:15+0200", "02:30+0200", "02:45+0200"]
    assert walls == [*first_pass, "03:00+0100", "03:15+0100"]
    assert utc(fires)[4] - utc(fires)[3] == dt.timedelta(minutes=75)
    assert_on_time(fires)


async def test_daily_in_berlin_across_the_spring_change(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """02:30 does not exist on 31 March 2024 in Berlin: that day the DAG runs at 03:00."""
    async with trio.open_nursery() as nursery:
        start = dt.datetime(2024, 3, 30, 12, 0, tzinfo=BERLIN)
        running = await start_trigger(nursery, "30 2 * * *", BERLIN, start)
        fires = await running.inbox.take(2)
        nursery.cancel_scope.cancel()

    assert utc(fires) == [
        dt.datetime(2024, 3, 31, 1, 0, tzinfo=UTC),  # 03:00 CEST
        dt.datetime(2024, 4, 1, 0, 30, tzinfo=UTC),  # 02:30 CEST
    ]
    assert_on_time(fires)


async def test_a_wall_clock_set_back_does_not_fire_a_time_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """NTP sets the clock back an hour after the 00:15 fire: 00:15 is not fired again, and
    00:30 fires when the wall clock reads 00:30 (75 minutes of real time later)."""
    async with trio.open_nursery() as nursery:
        running = await start_trigger(nursery, "*/15 * * * *", UTC, MONDAY)
        first = await running.inbox.next()
        running.clock.jump(-dt.timedelta(hours=1))
        before = trio.current_time()
        second = await running.inbox.next()
        waited = trio.current_time() - before
        nursery.cancel_scope.cancel()

    assert utc([first, second]) == [MONDAY.replace(minute=15), MONDAY.replace(minute=30)]
    assert waited == pytest.approx(75 * 60, abs=0.01)
    assert_on_time([first, second])


async def test_a_wall_clock_jump_forward_does_not_replay_every_missed_fire(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A virtual machine suspended from 00:16 to 01:20: the four fires it slept through (00:30
    to 01:15) are missed, like those of a pit that was down. At most one catch-up run, then the
    schedule goes on: four runs of one DAG at the same instant are four runs nobody asked for."""
    async with trio.open_nursery() as nursery:
        running = await start_trigger(nursery, "*/15 * * * *", UTC, MONDAY)
        assert utc([await running.inbox.next()]) == [MONDAY.replace(minute=15)]
        await trio.sleep(60)
        running.clock.jump(dt.timedelta(hours=1, minutes=3))  # now 01:20
        fires = [await running.inbox.next()]
        while fires[-1].scheduled < MONDAY.replace(hour=1, minute=30):
            fires.append(await running.inbox.next())
        nursery.cancel_scope.cancel()

    on_schedule = fires[-1]
    assert utc([on_schedule]) == [MONDAY.replace(hour=1, minute=30)]
    assert_on_time([on_schedule])
    catch_up = fires[:-1]
    assert len(catch_up) <= 1, f"replayed {[f.scheduled.strftime('%H:%M') for f in catch_up]}"


async def test_cancelling_the_trigger_closes_its_channel(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The supervisor's inbox clone is closed, so the supervisor is not kept waiting on it."""
    async with trio.open_nursery() as nursery:
        running = await start_trigger(nursery, "*/15 * * * *", UTC, MONDAY)
        await running.inbox.next()
        await trio.sleep(60)
        running.scope.cancel()
        with pytest.raises(trio.EndOfChannel):
            await running.inbox.next()


# --- catch-up ------------------------------------------------------------------------------------


async def answer(fire: Fire, verdict: RunRequestAnswer, *, end: bool = True) -> None:
    """Answer a catch-up request as the supervisor would, and end its run at once."""
    assert fire.request.reply is not None
    await fire.request.reply.send(verdict)
    if end and isinstance(verdict, RunAccepted):
        assert fire.request.ended is not None
        await fire.request.ended.send(
            RunEnded(record=RunRecord(run_id="r", dag="etl", trigger="catchup"))
        )


async def test_missed_fires_run_oldest_first_one_at_a_time_then_the_schedule_goes_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    thursday_noon = MONDAY + dt.timedelta(days=3, hours=12)
    async with trio.open_nursery() as nursery:
        running = await start_trigger(
            nursery,
            "0 6 * * *",
            UTC,
            thursday_noon,
            catchup=dt.timedelta(days=7),
            last_fire=MONDAY.replace(hour=6),
        )
        caught: list[Fire] = []
        for _ in range(3):
            fire = await running.inbox.next()
            caught.append(fire)
            await trio.sleep(600)  # the run takes ten minutes: nothing is asked meanwhile
            await answer(fire, RunAccepted(run_id="r"))
        (friday,) = await running.inbox.take(1)
        nursery.cancel_scope.cancel()

    days = [MONDAY.replace(hour=6) + dt.timedelta(days=n) for n in (1, 2, 3)]
    assert utc(caught) == days
    assert {f.request.trigger for f in caught} == {"catchup"}
    # each asked for when the one before had ended
    assert [f.arrived - thursday_noon for f in caught] == [
        dt.timedelta(minutes=10 * n) for n in range(3)
    ]
    assert (friday.request.trigger, utc([friday])) == ("cron", [days[-1] + dt.timedelta(days=1)])


async def test_the_window_caps_how_far_back_and_a_duplicate_or_an_overlap_is_handled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    thursday_noon = MONDAY + dt.timedelta(days=3, hours=12)
    async with trio.open_nursery() as nursery:
        running = await start_trigger(
            nursery,
            "0 6 * * *",
            UTC,
            thursday_noon,
            catchup=dt.timedelta(days=2),  # back to Tuesday noon: Wednesday's and Thursday's
            last_fire=MONDAY.replace(hour=6),
        )
        wednesday = await running.inbox.next()
        await answer(wednesday, RunRejected(reason="duplicate", message="ran already"))
        thursday = await running.inbox.next()
        await answer(thursday, RunRejected(reason="overlap", message="a run is active"))
        again = await running.inbox.next()
        await answer(again, RunAccepted(run_id="r"))
        (friday,) = await running.inbox.take(1)
        nursery.cancel_scope.cancel()

    assert utc([wednesday, thursday, again]) == [
        MONDAY.replace(hour=6) + dt.timedelta(days=n) for n in (2, 3, 3)
    ]
    assert again.arrived - thursday.arrived == dt.timedelta(seconds=CATCHUP_RETRY)
    assert friday.request.trigger == "cron"


async def test_without_a_last_fire_there_is_nothing_to_catch_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        start = MONDAY.replace(hour=10)
        running = await start_trigger(
            nursery, "0 6 * * *", UTC, start, catchup=dt.timedelta(days=7), last_fire=None
        )
        (first,) = await running.inbox.take(1)
        nursery.cancel_scope.cancel()

    assert (first.request.trigger, utc([first])) == (
        "cron",
        [MONDAY.replace(hour=6) + dt.timedelta(days=1)],
    )
