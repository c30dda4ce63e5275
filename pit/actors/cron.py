"""The cron trigger: sleeps until a DAG's next fire time, then asks the supervisor for a run.

The fire-time maths is `pit.spec.cron.next_fire` (pure, DST rules there); this actor only sleeps.
Fires missed while pit was down are not replayed: it counts from the moment it starts.
"""

from __future__ import annotations

import datetime as dt

import attrs
import trio

from pit.clock import Clock
from pit.messages.trigger import RunRequested, SupervisorInbox
from pit.spec.cron import next_fire

_LAST_STEP = 1.0


@attrs.frozen(kw_only=True)
class CronTrigger:
    dag: str
    schedule: str
    tz: dt.tzinfo
    clock: Clock
    supervisor: trio.MemorySendChannel[SupervisorInbox]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async with self.supervisor:
            after = self.clock.now()
            while True:
                fire = next_fire(self.schedule, after, self.tz)
                # Sleep in steps re-reading the wall clock: it may jump (NTP, a suspended VM)
                # while trio's monotonic clock does not. The last step is short: a long sleep
                # wakes late by ~0.1% of its length (the kernel's timer slack).
                while (left := (fire - self.clock.now()).total_seconds()) > 0:  # noqa: ASYNC110
                    await trio.sleep(left if left <= _LAST_STEP else min(left - _LAST_STEP, 60.0))
                await self.supervisor.send(
                    RunRequested(dag=self.dag, trigger="cron", scheduled_time=fire)
                )
                # After a jump forward, fire once for the time woken for, not for every fire
                # the jump went past (those were missed, like fires while pit was down).
                after = max(fire, self.clock.now())
