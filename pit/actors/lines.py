"""Task output as whole lines, for the views and the executor's log."""

from __future__ import annotations

from pit.messages.task import TaskOutput


class OutputLines:
    """Splits each task's output chunks into whole lines, keeping partial lines per task."""

    def __init__(self) -> None:
        self._partial: dict[str, str] = {}

    def feed(self, chunk: TaskOutput) -> list[str]:
        text = self._partial.pop(chunk.task, "") + chunk.data.decode("utf-8", "replace")
        *lines, rest = text.split("\n")
        if rest:
            self._partial[chunk.task] = rest
        return lines

    def flush(self, task: str) -> str | None:
        return self._partial.pop(task, None)

    def rest(self) -> dict[str, str]:
        """Every task's partial last line (the output has ended)."""
        rest, self._partial = self._partial, {}
        return rest
