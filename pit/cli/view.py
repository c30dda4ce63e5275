"""What `pit run` shows while a run goes on: a live table on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Protocol, assert_never

import trio

from pit.actors.lines import OutputLines
from pit.messages.run import RunEnded, RunEvent, RunRecord, RunStarted, TaskRecord, TaskUpdated
from pit.messages.task import TaskOutput
from pit.spec.durations import format_duration
from pit.spec.problems import plural
from pit.spec.states import RunState, TaskState

if TYPE_CHECKING:
    import datetime as dt


class View(Protocol):
    stream_output: bool

    async def run(
        self,
        events: trio.MemoryReceiveChannel[RunEvent],
        output: trio.MemoryReceiveChannel[TaskOutput] | None,
    ) -> None: ...

    def notice(self, text: str) -> None: ...


def make_view(*, stream_output: bool) -> View:
    if sys.stdout.isatty():
        from pit.cli.live import LiveView  # rich costs start-up time; only terminals need it

        return LiveView(stream_output=stream_output)
    return PlainView(stream_output=stream_output)


def task_duration(task: TaskRecord, now: dt.datetime | None = None) -> float | None:
    end = task.ended_at or now
    if task.started_at is None or end is None:
        return None
    return (end - task.started_at).total_seconds()


def describe_task(task: TaskRecord) -> str:
    parts = []
    if task.attempts > 1:
        parts.append(f"attempt {task.attempts}")
    if (seconds := task_duration(task)) is not None:
        parts.append(format_duration(seconds))
    detail = f" ({', '.join(parts)})" if parts else ""
    if task.state is TaskState.RUNNING and task.retry_in is not None:
        return f"{task.error}; retrying in {format_duration(task.retry_in)}"
    error = f": {task.error}" if task.error and task.state is not TaskState.SUCCESS else ""
    return f"{task.state.value}{detail}{error}"


def summary_line(record: RunRecord) -> str:
    counts: dict[str, int] = {}
    for task in record.tasks:
        counts[task.state.value] = counts.get(task.state.value, 0) + 1
    tally = ", ".join(f"{n} {state}" for state, n in counts.items())
    took = ""
    if record.started_at and record.ended_at:
        took = f" in {format_duration((record.ended_at - record.started_at).total_seconds())}"
    error = f" ({record.error})" if record.error and record.state is not RunState.SUCCESS else ""
    line = f"run {record.run_id} {record.state.value}{took}{error}: {tally}"
    failed = [t.name for t in record.tasks if t.state is TaskState.FAILED]
    if failed:
        line += f"\nsee the log: pit logs {record.dag}/{failed[0]}"
    return line


class PlainView:
    """One line per task state change; with streamed output, each line prefixed by its task."""

    def __init__(self, *, stream_output: bool) -> None:
        self.stream_output = stream_output
        self._lines = OutputLines()
        self._width = 0

    async def run(
        self,
        events: trio.MemoryReceiveChannel[RunEvent],
        output: trio.MemoryReceiveChannel[TaskOutput] | None,
    ) -> None:
        async with trio.open_nursery() as nursery:
            if output is not None:
                nursery.start_soon(self._print_output, output)
            async with events:
                async for event in events:
                    self._show(event)
                    # Flush once per burst of events, not once per line.
                    while True:
                        try:
                            self._show(events.receive_nowait())
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                    sys.stdout.flush()

    def _show(self, event: RunEvent) -> None:
        match event:
            case RunStarted(record=record):
                self._width = max((len(t.name) for t in record.tasks), default=0)
                _say(f"run {record.run_id} started ({plural(len(record.tasks), 'task')})")
            case TaskUpdated(record=task):
                if task.state.terminal and (rest := self._lines.flush(task.name)):
                    _say(f"[{task.name}] {rest}")
                if task.state is not TaskState.PENDING:
                    _say(f"{task.name:<{self._width}}  {describe_task(task)}")
            case RunEnded(record=record):
                _say(summary_line(record))
            case _:
                assert_never(event)

    async def _print_output(self, output: trio.MemoryReceiveChannel[TaskOutput]) -> None:
        async with output:
            async for chunk in output:
                if lines := self._lines.feed(chunk):
                    prefix = f"[{chunk.task}] "
                    sys.stdout.write("".join(f"{prefix}{line}\n" for line in lines))
                    sys.stdout.flush()

    def notice(self, text: str) -> None:
        sys.stderr.write(f"pit: {text}\n")
        sys.stderr.flush()


def _say(text: str) -> None:
    """A line for stdout, flushed with the rest of its burst."""
    sys.stdout.write(text + "\n")
