"""Durations written as `30s`, `15m`, `2h`, `1h30m`, `500ms` or `1d`."""

from __future__ import annotations

import re

_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in `text`; raises ValueError with a readable message when it is not a duration."""
    compact = text.strip()
    if not compact or _PART.sub("", compact):
        raise ValueError(
            f"'{text}' is not a duration; write it like '30s', '15m', '1h30m' or '500ms'"
        )
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(compact))


def format_duration(seconds: float) -> str:
    """A short human form: `850ms`, `12.3s`, `4m05s`, `2h03m`."""
    if round(seconds * 1000) < 1000:
        return f"{seconds * 1000:.0f}ms"
    if round(seconds, 1) < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
