"""Cron expressions (5 fields): validation and fire-time maths, as pure functions.

Daylight saving, the rule: a wall-clock minute that occurs twice (autumn) fires once, at its
first occurrence; one that does not occur (spring) fires at the next valid time (croniter moves
02:30 to 03:00).
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import re

from pit.spec.problems import plural, shown

_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
)
_SOME_TIME = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@functools.lru_cache(maxsize=1024)
def cron_problem(expr: str) -> str | None:
    """Why `expr` is not a valid 5-field cron expression, or None if it is. Says which field is
    wrong (`minute field '61' out of range 0-59`), and catches dates that never come (Feb 30).

    An expression in the plain grammar (numbers, `*`, ranges, steps, lists; `?` for a day) is
    judged here; anything else (names, `L`, `W`, `#`...) by croniter, which costs `pit validate`
    ~30 ms to import and ~0.5 ms per expression. `tests/spec/test_cron_plain.py` holds both
    judges to the same verdicts."""
    fields = expr.split()
    if len(fields) != 5:
        return (
            f"{shown(expr)} has {plural(len(fields), 'field')}; cron needs 5 "
            "(minute hour day-of-month month day-of-week)"
        )
    for text, (field, low, high) in zip(fields, _FIELDS, strict=True):
        if reason := _field_problem(text, field, low, high):
            return f"{shown(expr)}: {reason}"
    verdict = plain_verdict(fields)
    if verdict is None:
        verdict = croniter_verdict(expr)
    return None if verdict is Verdict.FIRES else f"{shown(expr)} {verdict.value}"


class Verdict(enum.Enum):
    FIRES = "fires"
    INVALID = "is not a valid cron expression"
    NEVER = "never fires (no such date)"


_PLAIN_ITEM = re.compile(r"(?:\*|(\d+)-(\d+))(?:/(\d+))?|(\d+)")
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # a leap year's February


def plain_verdict(fields: list[str]) -> Verdict | None:
    """The verdict on 5 fields in range (`_field_problem`) written in the plain grammar, or
    None when some field is not (croniter judges those)."""
    values = []
    for index, (text, (_, low, high)) in enumerate(zip(fields, _FIELDS, strict=True)):
        if text == "?" and index in (2, 4):  # croniter reads `?` as `*`, for days only
            text = "*"
        if index in (2, 4) and text != "*" and "*" in text:
            return None  # `*/2` of days: croniter has its own reading of "either day field"
        found = _plain_values(text, low, high)
        if found is None:
            return None
        values.append(found)
    _, _, days, months, _ = values
    if fields[4] not in ("*", "?"):
        return Verdict.FIRES  # a day of the week: either day field fires (croniter's day_or)
    if any(day <= _DAYS_IN_MONTH[month - 1] for day in days for month in months):
        return Verdict.FIRES
    return Verdict.NEVER


def _plain_values(text: str, low: int, high: int) -> set[int] | None:
    found: set[int] = set()
    items = text.split(",")
    if len(items) > 1 and "*" in items:  # croniter reads `*,*` as `*`, but `1-31` as days
        return None
    for item in items:
        match = _PLAIN_ITEM.fullmatch(item)
        if match is None:
            return None
        start, end, step, single = match.groups()
        if single is not None:
            found.add(int(single))
            continue
        first, last = (int(start), int(end)) if start is not None else (low, high)
        if first >= last:  # croniter reads `5-5` as the whole cycle and `5-1` as wrapping
            return None
        found.update(range(first, last + 1, int(step or 1)))
    return found


def croniter_verdict(expr: str) -> Verdict:
    from croniter import croniter  # lazy: croniter pulls in dateutil (~30 ms of start-up)

    try:
        valid = croniter.is_valid(expr)
    except Exception:  # a third-party parser: any failure means "not valid"
        valid = False
    if not valid:
        return Verdict.INVALID
    try:
        croniter_next_fire(expr, _SOME_TIME, dt.UTC)
    except Exception:  # croniter gives up on a date that never comes
        return Verdict.NEVER
    return Verdict.FIRES


def _field_problem(text: str, field: str, low: int, high: int) -> str | None:
    """The first number of one field outside `low..high`, or a step that is not 1 or more."""
    for item in text.split(","):
        base, _, step = item.partition("/")
        if step and not (step.isascii() and step.isdigit() and len(step) <= 4 and int(step) >= 1):
            return f"{field} field {shown(item)}: the step must be a number of 1 or more"
        for number in base.split("-"):
            # Four digits at most before int(): a 5,000-digit number must not reach int().
            if (
                number.isascii()
                and number.isdigit()
                and not (len(number) <= 4 and low <= int(number) <= high)
            ):
                return f"{field} field {shown(number)} out of range {low}-{high}"
    return None


def timezone_problem(name: str) -> str | None:
    """Why `name` is not a time zone zoneinfo can load, or None if it is."""
    import zoneinfo  # here: it costs start-up, and most DAGs name no time zone

    try:
        zoneinfo.ZoneInfo(name)
    except (ValueError, OSError, LookupError, ImportError):
        # Not found (a KeyError), a folder such as 'Europe' (IsADirectoryError), a name too long
        # for the file system (OSError), a malformed key or file (ValueError).
        return f"{shown(name)} is not a time zone"
    return None


def next_fire(expr: str, after: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """The first time strictly after the aware datetime `after` at which `expr` fires, read on
    the wall clock of `tz`. Plain expressions are worked out here (`plain_next_fire`), the rest
    by croniter (`tests/spec/test_cron_plain.py` holds both to the same times)."""
    return plain_next_fire(expr, after, tz) or croniter_next_fire(expr, after, tz)


def fires_between(
    expr: str, first: dt.datetime, last: dt.datetime, tz: dt.tzinfo, *, limit: int
) -> list[dt.datetime]:
    """Every fire time from `first` to `last` (both included), oldest first; ValueError when
    there are more than `limit`."""
    fires: list[dt.datetime] = []
    fire = next_fire(expr, first - dt.timedelta(microseconds=1), tz)
    while fire <= last:
        if len(fires) == limit:
            raise ValueError(f"more than {limit} fire times")
        fires.append(fire)
        fire = next_fire(expr, fire, tz)
    return fires


def croniter_next_fire(expr: str, after: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    from croniter import croniter  # lazy: croniter pulls in dateutil (~30 ms of start-up)

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


_WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_MONTHS = (
    *("January", "February", "March", "April", "May", "June", "July"),
    *("August", "September", "October", "November", "December"),
)


def describe(expr: str) -> str:
    """A schedule in words (`at 06:00 every day`, `every 15 minutes from 09:00 to 17:59,
    Monday to Friday`); an expression beyond the plain grammar, or a time of day too intricate
    for a phrase, is shown as it is (`cron 0 0 L * *`)."""
    fields = expr.split()
    if cron_problem(expr) is not None or plain_verdict(fields) is None:
        return f"cron {expr}"
    minute, hour, day, month, weekday = fields
    when = _time_of_day(minute, hour)
    if when is None:
        return f"cron {expr}"
    days = []
    if day not in ("*", "?"):
        numbers = sorted(_plain_values(day, 1, 31) or ())
        shown_days = _listed([str(n) for n in numbers])
        days.append(f"on day{'s' if len(numbers) > 1 else ''} {shown_days} of the month")
    weekdays = sorted({d % 7 for d in _plain_values(weekday, 0, 7) or ()})
    if weekday not in ("*", "?") and len(weekdays) < 7:
        days.append(f"on {_names(weekdays, _WEEKDAYS)}")
    if days:
        phrase = f"{when} {' or '.join(days)}"
    else:  # "every 5 minutes" needs no "every day"
        phrase = when if "every" in when else f"{when} every day"
    if month != "*":
        phrase += f", in {_names(sorted(_plain_values(month, 1, 12) or ()), _MONTHS, first=1)}"
    return phrase


def _time_of_day(minute: str, hour: str) -> str | None:
    minutes = sorted(_plain_values(minute, 0, 59) or ())
    hours = sorted(_plain_values(hour, 0, 23) or ())
    span = "" if hour == "*" else f" from {hours[0]:02d}:00 to {hours[-1]:02d}:59"
    contiguous = hours == list(range(hours[0], hours[-1] + 1))
    if minute == "*" and contiguous:
        return f"every minute{span}"
    if minute.startswith("*/") and contiguous:
        return f"every {minute[2:]} minutes{span}"
    if len(minutes) == 1 and hour == "*":
        return "every hour" if minutes[0] == 0 else f"at minute {minutes[0]} of every hour"
    if len(minutes) * len(hours) <= 4:
        return "at " + _listed([f"{h:02d}:{m:02d}" for h in hours for m in minutes])
    return None


def _names(values: list[int], names: tuple[str, ...], *, first: int = 0) -> str:
    """`Monday to Friday` for a run of 3 or more, else a list."""
    if len(values) >= 3 and values == list(range(values[0], values[-1] + 1)):
        return f"{names[values[0] - first]} to {names[values[-1] - first]}"
    return _listed([names[v - first] for v in values])


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def plain_next_fire(expr: str, after: dt.datetime, tz: dt.tzinfo) -> dt.datetime | None:
    """`next_fire` for an expression in the plain grammar, without croniter; None for any
    other. Same rules: a wall-clock minute that occurs twice fires at its first occurrence, one
    that does not occur at the end of the gap."""
    fields = expr.split()
    if cron_problem(expr) is not None or plain_verdict(fields) is not Verdict.FIRES:
        return None
    sets = [
        _plain_values(text.replace("?", "*"), low, high) or set()
        for text, (_, low, high) in zip(fields, _FIELDS, strict=True)
    ]
    minutes, hours = sorted(sets[0]), sorted(sets[1])
    days, months, weekdays = sets[2], sets[3], {d % 7 for d in sets[4]}
    any_day, any_weekday = fields[2] in ("*", "?"), fields[4] in ("*", "?")

    def fires_on(day: dt.date) -> bool:
        if day.month not in months:
            return False
        by_day, by_weekday = day.day in days, day.isoweekday() % 7 in weekdays
        if any_day or any_weekday:
            return (any_day or by_day) and (any_weekday or by_weekday)
        return by_day or by_weekday  # both restricted: either (croniter's day_or)

    day = after.astimezone(tz).date() - dt.timedelta(days=1)  # a gap may reach back a day
    for _ in range(4 * 366 + 2):
        if fires_on(day):
            for hour in hours:
                for minute in minutes:
                    at = _on_the_clock(dt.datetime.combine(day, dt.time(hour, minute)), tz)
                    if at > after:
                        return at
        day += dt.timedelta(days=1)
    return None  # unreachable for an expression that fires


def _on_the_clock(wall: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """The instant a wall-clock time names in `tz`: its first occurrence when it occurs twice,
    the end of the gap when it does not occur."""
    at = wall.replace(tzinfo=tz, fold=0)
    while at.astimezone(dt.UTC).astimezone(tz).replace(tzinfo=None) != wall:  # in a gap
        wall += dt.timedelta(minutes=1)
        at = wall.replace(tzinfo=tz, fold=0)
    return at
