"""The terminal view of a run: a table of tasks with state, attempt and a ticking duration."""

from __future__ import annotations

from typing import assert_never

import trio
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from pit.actors.lines import OutputLines
from pit.cli.view import describe_task, summary_line, task_duration
from pit.clock import SystemClock
from pit.messages.run import RunEnded, RunEvent, RunStarted, RunTracker, TaskUpdated
from pit.messages.task import TaskOutput
from pit.spec.durations import format_duration
from pit.spec.states import RunState, TaskState

_STYLE = {
    TaskState.PENDING: "dim",
    TaskState.QUEUED: "magenta",
    TaskState.RUNNING: "bold cyan",
    TaskState.SUCCESS: "green",
    TaskState.FAILED: "bold red",
    TaskState.SKIPPED: "yellow",
    TaskState.UPSTREAM_FAILED: "red",
}
_RUN_STYLE = {
    RunState.SUCCESS: "bold green",
    RunState.FAILED: "bold red",
    RunState.CANCELLED: "bold yellow",
}
_MAX_ROWS = 40
"""Beyond this many tasks the table shows the running and failed ones and a count of the rest."""


class LiveView:
    def __init__(self, *, stream_output: bool) -> None:
        self.stream_output = stream_output
        self.console = Console()
        self._run = RunTracker()
        self._lines = OutputLines()
        self._clock = SystemClock()

    def __rich__(self) -> RenderableType:
        if not self._run.started:
            return Text("starting...")
        record = self._run.record
        now = self._clock.now()
        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        for column in ("task", "state", "attempt", "time", ""):
            table.add_column(column)
        tasks = list(record.tasks)
        if len(tasks) > _MAX_ROWS:
            tasks = [t for t in tasks if t.state in (TaskState.RUNNING, TaskState.FAILED)]
        for task in tasks[:_MAX_ROWS]:
            seconds = task_duration(task, now if task.state is TaskState.RUNNING else None)
            note = describe_task(task).partition(": ")[2] if task.error else ""
            if task.state is TaskState.RUNNING and task.retry_in is not None:
                note = f"retrying: {task.error}"
            table.add_row(
                task.name,
                Text(task.state.value, style=_STYLE[task.state]),
                str(task.attempts or ""),
                format_duration(seconds) if seconds else "",
                Text(note, style="dim"),
            )
        counts: dict[TaskState, int] = {}
        for task in record.tasks:
            counts[task.state] = counts.get(task.state, 0) + 1
        tally = Text("  ".join(f"{n} {s.value}" for s, n in counts.items()), style="dim")
        return Group(Text(f"{record.dag}  {record.run_id}", style="bold"), table, tally)

    async def run(
        self,
        events: trio.MemoryReceiveChannel[RunEvent],
        output: trio.MemoryReceiveChannel[TaskOutput] | None,
    ) -> None:
        with Live(self, console=self.console, refresh_per_second=8, transient=False):
            async with trio.open_nursery() as nursery:
                if output is not None:
                    nursery.start_soon(self._print_output, output)
                async with events:
                    async for event in events:
                        self._run.apply(event)
                        match event:
                            case TaskUpdated(record=task):
                                rest = self._lines.flush(task.name) if task.state.terminal else ""
                                if rest:
                                    self.console.print(
                                        f"[{task.name}] {rest}", markup=False, highlight=False
                                    )
                            case RunStarted() | RunEnded():
                                pass  # the table shows them (`self._run`)
                            case _:
                                assert_never(event)
        if self._run.started:
            record = self._run.record
            self.console.print(Text(summary_line(record), style=_RUN_STYLE.get(record.state, "")))

    async def _print_output(self, output: trio.MemoryReceiveChannel[TaskOutput]) -> None:
        async with output:
            async for chunk in output:
                for line in self._lines.feed(chunk):
                    self.console.print(f"[{chunk.task}] {line}", markup=False, highlight=False)

    def notice(self, text: str) -> None:
        self.console.print(Text(f"pit: {text}", style="yellow"))
