"""The only place that reads the wall clock.

Everything that needs "now" takes a `Clock`; tests pass a fixed one. Sleeping and timeouts use
trio's own clock, which tests fake with `autojump_clock`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current time, timezone-aware (UTC for the system clock; `astimezone()` gives
        the machine's local time for display)."""
        ...


class SystemClock:
    def now(self) -> dt.datetime:
        # UTC: reading the local zone on every call costs more than the read itself.
        return dt.datetime.now(dt.UTC)


class FixedClock:
    """A clock that reads what it is told; for tests and for replaying records."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def now(self) -> dt.datetime:
        return self.at


def local_zone() -> dt.tzinfo:
    """The machine's time zone as a DST-aware zone: `TZ`, else what /etc/localtime links to,
    else UTC."""
    import zoneinfo  # here: reading the clock must not pay for it

    names = [os.environ.get("TZ", "").lstrip(":")]
    with contextlib.suppress(OSError):
        names.append(str(Path("/etc/localtime").resolve()).partition("zoneinfo/")[2])
    for name in names:
        if name:
            try:
                return zoneinfo.ZoneInfo(name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                continue
    return dt.UTC


@functools.cache  # the machine's zone is looked up once, not once per DAG
def zone_of(name: str | None) -> dt.tzinfo:
    """A DAG's time zone: the IANA zone it names, else the machine's. ValueError (or OSError)
    for a name that is no zone: validation keeps those out."""
    if name is None:
        return local_zone()
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(name)
    except zoneinfo.ZoneInfoNotFoundError as exc:
        raise ValueError(f"no time zone {name!r}") from exc
