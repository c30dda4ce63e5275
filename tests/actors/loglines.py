"""Reading a task's log without depending on how its attempt headers print the time."""

from __future__ import annotations

import re

_HEADER = re.compile(r"=== attempt \d+/\d+")


def log_lines(text: str) -> list[str]:
    """The log's lines, each attempt header cut to its `=== attempt n/m` part."""
    return [(m.group() if (m := _HEADER.match(line)) else line) for line in text.splitlines()]
