"""The cron trigger: sleeps until a DAG's next fire time, then asks the supervisor for a run.

The fire-time maths is `pit.spec.cron.next_fire` (pure, DST rules there); this actor only sleeps.
Without `catchup`, fires missed while pit was down are not replayed: it counts from the moment
it starts. With it, it counts from the DAG's last fire (`last_fire`: the newest run made for a
fire time), at most `catchup_window` back, and asks for each missed fire in turn (trigger
`catchup`), waiting for each run to end before asking for the next, so the DAG's overlap policy
holds and the fires run oldest first. A run's id is its fire time's: a fire asked for twice (a
restart within the minute) is refused as a duplicate, and skipped.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import attrs
import trio

from pit.clock import Clock
from pit.messages.run import RunEnded
from pit.messages.trigger import RunRequested, SupervisorInbox
from pit.messages.webhook import RunAccepted, RunRejected, RunRequestAnswer
from pit.spec.cron import next_fire

log = logging.getLogger("pit.serve")

_LAST_STEP = 1.0
LATE = dt.timedelta(minutes=1)
"""A fire woken for this late was missed (pit was down, the clock jumped): with `catchup`, it
is caught up; without, it fires once, late."""
CATCHUP_RETRY = 5.0
"""Seconds before a missed fire refused for overlap (another run of the DAG is active) or a
busy supervisor is asked for again."""


@attrs.frozen(kw_only=True)
class CronTrigger:
    dag: str
    schedule: str
    tz: dt.tzinfo
    clock: Clock
    supervisor: trio.MemorySendChannel[SupervisorInbox]
    catchup_window: dt.timedelta | None = None
    """How far back missed fires are run; None: they are not."""
    last_fire: Callable[[], dt.datetime | None] = lambda: None
    """The DAG's last fire time that has a run (blocking: run in a worker thread)."""

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async with self.supervisor:
            after = self.clock.now()
            if self.catchup_window is not None:
                last = await trio.to_thread.run_sync(self.last_fire)
                if last is not None:
                    after = max(last, after - self.catchup_window)
            while True:
                fire = next_fire(self.schedule, after, self.tz)
                # Sleep in steps re-reading the wall clock: it may jump (NTP, a suspended VM)
                # while trio's monotonic clock does not. The last step is short: a long sleep
                # wakes late by ~0.1% of its length (the kernel's timer slack).
                while (left := (fire - self.clock.now()).total_seconds()) > 0:  # noqa: ASYNC110
                    await trio.sleep(left if left <= _LAST_STEP else min(left - _LAST_STEP, 60.0))
                if self.catchup_window is not None and self.clock.now() - fire > LATE:
                    await self._catch_up(fire)
                    after = fire
                    continue
                await self.supervisor.send(
                    RunRequested(dag=self.dag, trigger="cron", scheduled_time=fire)
                )
                # After a jump forward, fire once for the time woken for, not for every fire
                # the jump went past (those were missed, like fires while pit was down), unless
                # missed fires are caught up.
                after = fire if self.catchup_window is not None else max(fire, self.clock.now())

    async def _catch_up(self, fire: dt.datetime) -> None:
        """Ask for the run of a missed fire and wait for it to end; asked again while another
        run of the DAG holds it back, skipped when it has its run already or cannot run."""
        reply_send, reply = trio.open_memory_channel[RunRequestAnswer](1)
        ended_send, ended = trio.open_memory_channel[RunEnded](1)
        async with reply_send, reply, ended_send, ended:
            while True:
                request = RunRequested(
                    dag=self.dag,
                    trigger="catchup",
                    scheduled_time=fire,
                    reply=reply_send,
                    ended=ended_send,
                )
                await self.supervisor.send(request)
                match await reply.receive():
                    case RunAccepted():
                        await ended.receive()
                        return
                    case RunRejected(reason="overlap" | "busy"):
                        await trio.sleep(CATCHUP_RETRY)
                    case RunRejected(reason=reason, message=message):
                        if reason != "duplicate":
                            log.info("%s: missed fire %s not run: %s", self.dag, fire, message)
                        return
