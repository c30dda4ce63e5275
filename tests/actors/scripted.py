"""An in-process launch that follows a script, so the run actor can be driven on trio's fake clock.

A real process cannot be used with `autojump_clock`: while pit waits on it, every trio task is
blocked and the fake clock would jump past every timeout. A `ScriptedLaunch` only sleeps on trio's
clock, and the `Script` notes when each attempt started and ended, so tests can assert start
times, retry delays and how many tasks ran at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import BinaryIO

import attrs
import trio

from pit.runners.command import Outcome
from pit.spec.dag import TaskSpec


@attrs.frozen
class Step:
    """What one attempt does: sleep `seconds` on trio's clock, then end with `exit_code`."""

    seconds: float
    exit_code: int = 0


@attrs.define
class Attempt:
    task: str
    number: int
    started: float
    """Seconds since the script was made (trio's clock)."""
    ended: float | None = None
    cancelled: bool = False
    """Stopped from outside (timeout, stop, kill) before its step was over."""


@attrs.define
class Script:
    steps: Mapping[str, Sequence[Step]]
    """Per task, the step of each attempt; attempts past the end repeat the last step."""
    origin: float = attrs.field(init=False, factory=trio.current_time)
    attempts: list[Attempt] = attrs.field(init=False, factory=list)
    running: set[str] = attrs.field(init=False, factory=set)
    most_running: int = attrs.field(init=False, default=0)
    """The most attempts that were running at the same moment."""

    def launch(self, task: TaskSpec, attempt: int) -> ScriptedLaunch:
        steps = self.steps[task.name]
        return ScriptedLaunch(
            script=self, task=task.name, attempt=attempt, step=steps[min(attempt, len(steps)) - 1]
        )

    def now(self) -> float:
        return trio.current_time() - self.origin

    def starts(self, task: str) -> list[float]:
        return [a.started for a in self.attempts if a.task == task]

    def started_tasks(self) -> list[str]:
        """Task names in the order their first attempt started."""
        names: list[str] = []
        for attempt in self.attempts:
            if attempt.task not in names:
                names.append(attempt.task)
        return names

    def begin(self, task: str, number: int) -> Attempt:
        assert task not in self.running, f"{task} started twice at once"
        attempt = Attempt(task=task, number=number, started=self.now())
        self.attempts.append(attempt)
        self.running.add(task)
        self.most_running = max(self.most_running, len(self.running))
        return attempt


@attrs.frozen(kw_only=True)
class ScriptedLaunch:
    script: Script
    task: str
    attempt: int
    step: Step

    def describe(self) -> str:
        return f"scripted {self.task} attempt {self.attempt}"

    async def execute(self, log: BinaryIO) -> Outcome:
        attempt = self.script.begin(self.task, self.attempt)
        log.write(f"{self.describe()}\n".encode())
        try:
            await trio.sleep(self.step.seconds)
        except trio.Cancelled:
            attempt.cancelled = True
            raise
        finally:
            attempt.ended = self.script.now()
            self.script.running.discard(self.task)
        if self.step.exit_code == 0:
            return Outcome(exit_code=0, error=None)
        return Outcome(exit_code=self.step.exit_code, error=f"exit code {self.step.exit_code}")
