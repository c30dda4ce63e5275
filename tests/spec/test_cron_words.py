"""A schedule in words, for `pit status`."""

from __future__ import annotations

import pytest

from pit.spec.cron import describe


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("0 6 * * *", "at 06:00 every day"),
        ("*/15 9-17 * * 1-5", "every 15 minutes from 09:00 to 17:59 on Monday to Friday"),
        ("0 * * * *", "every hour"),
        ("30 * * * *", "at minute 30 of every hour"),
        ("*/5 * * * *", "every 5 minutes"),
        ("0 6,18 * * *", "at 06:00 and 18:00 every day"),
        ("0 8 * * 1,3,5", "at 08:00 on Monday, Wednesday and Friday"),
        ("0 0 1,15 * *", "at 00:00 on days 1 and 15 of the month"),
        ("0 0 13 * 5", "at 00:00 on day 13 of the month or on Friday"),
        ("0 9 * 6-8 *", "at 09:00 every day, in June to August"),
        ("0 2 * * 0-6", "at 02:00 every day"),
        ("0 0 * * 7", "at 00:00 on Sunday"),
        # Beyond the plain grammar, or too intricate for a phrase: shown as written.
        ("0 0 L * *", "cron 0 0 L * *"),
        ("0 0 * JAN *", "cron 0 0 * JAN *"),
        ("1,2,3,4,5 * * * *", "cron 1,2,3,4,5 * * * *"),
        ("61 * * * *", "cron 61 * * * *"),
    ],
)
def test_a_schedule_in_words(expr: str, words: str) -> None:
    assert describe(expr) == words
