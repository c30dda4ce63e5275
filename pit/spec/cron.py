"""Cron expressions (5 fields): validation and fire-time maths, as pure functions."""

from __future__ import annotations

import datetime as dt


def cron_problem(expr: str) -> str | None:
    """Why `expr` is not a valid 5-field cron expression, or None if it is."""
    fields = expr.split()
    if len(fields) != 5:
        return (
            f"'{expr}' has {len(fields)} fields; cron needs 5 "
            "(minute hour day-of-month month day-of-week)"
        )
    from croniter import croniter  # lazy: croniter pulls in dateutil (~100 ms of start-up)

    if not croniter.is_valid(expr):
        return f"'{expr}' is not a valid cron expression"
    return None


def next_fire(expr: str, after: dt.datetime) -> dt.datetime:
    """The first time strictly after the aware datetime `after` at which `expr` fires."""
    from croniter import croniter

    fire: dt.datetime = croniter(expr, after).get_next(dt.datetime)
    return fire
