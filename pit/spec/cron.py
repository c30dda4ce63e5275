"""Cron expressions (5 fields): validation and fire-time maths, as pure functions.

Daylight saving, the rule: a wall-clock minute that occurs twice (autumn) fires once, at its
first occurrence; one that does not occur (spring) fires at the next valid time (croniter moves
02:30 to 03:00).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo


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


def timezone_problem(name: str) -> str | None:
    """Why `name` is not an IANA time zone, or None if it is."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"'{name}' is not a time zone (use an IANA name such as 'Europe/Berlin' or 'UTC')"
    return None


def next_fire(expr: str, after: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """The first time strictly after the aware datetime `after` at which `expr` fires, read on
    the wall clock of `tz`."""
    from croniter import croniter

    schedule = croniter(expr, after.astimezone(tz))
    while True:
        fire: dt.datetime = schedule.get_next(dt.datetime)
        if not _second_occurrence(fire, tz):
            return fire


def _second_occurrence(at: dt.datetime, tz: dt.tzinfo) -> bool:
    """Whether `at` is the repeat of a wall-clock time that the autumn change shows twice."""
    wall = at.replace(tzinfo=None)
    first = wall.replace(fold=0, tzinfo=tz).utcoffset()
    second = wall.replace(fold=1, tzinfo=tz).utcoffset()
    return first != second and at.utcoffset() == second and at.utcoffset() != first
