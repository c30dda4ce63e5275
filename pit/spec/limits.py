"""The ranges pit accepts for numbers, durations, names and paths in its config files.

A value outside them is a problem `pit validate` reports, never a crash or a hang at run time:
`retries = 2**63` would retry for ever, `retry_backoff = inf` makes waits infinite, a task named
`../../x` would write its log outside the run folder.
"""

from __future__ import annotations

import re

MAX_DURATION = 7 * 24 * 3600.0
"""Seconds: the longest timeout, retry delay, grace or poll interval (7 days)."""
MAX_DURATION_TEXT = "7d"
MAX_AGE = 366 * 24 * 3600.0
"""Seconds: the longest `max_age` of a required DAG (366 days)."""
MAX_AGE_TEXT = "366d"
MAX_KEEP_RUNS = 1_000_000
MAX_KEEP_DAYS = 36_600
"""A hundred years: `keep_days` beyond it keeps everything anyway."""
MAX_RETRIES = 100
MAX_BACKOFF = 10.0
MAX_ACTIVE = 1000
"""The largest `max_active_tasks` / `max_active_runs`."""
MAX_QUEUED = 100_000
MAX_PRIORITY = 1_000_000
MAX_POOL = 10_000
"""Slots a pool may have."""
"""The largest `max_queued_runs`."""
MAX_STABLE_SECONDS = 86_400
MAX_PATH = 255
"""Characters in a path written in a config file (script, secrets_dir, runs_dir...)."""
MAX_STRING = 4096
"""Characters in any other string (a time zone is a path too: at most MAX_PATH)."""
MAX_NAME = 100

NAME_RULE = f"1 to {MAX_NAME} letters, digits, '_', '.' or '-', and not '.' or '..'"
_NAME = re.compile(rf"[A-Za-z0-9_.-]{{1,{MAX_NAME}}}")


def name_problem(name: str) -> str | None:
    """Why `name` cannot name a DAG or task (it becomes a file name in the run folder)."""
    if _NAME.fullmatch(name) and name not in (".", ".."):
        return None
    if not name:
        return "must not be empty"
    if len(name) > MAX_NAME:
        return f"is {len(name)} characters long; the most is {MAX_NAME}"
    if name in (".", ".."):
        return f"'{name}' cannot be a name"
    bad = next(c for c in name if not _NAME.fullmatch(c))
    return f"{bad!r} is not allowed in a name"
