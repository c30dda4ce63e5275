"""`cron_problem` and `next_fire`: cron as pure functions of their inputs."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from pit.spec.cron import cron_problem, next_fire

UTC = dt.UTC


@pytest.mark.parametrize(
    "expr", ["0 6 * * *", "*/15 * * * *", "0 0 1 1 *", "30 2 * * 1-5", "0 6 * * 0"]
)
def test_valid_cron(expr: str) -> None:
    assert cron_problem(expr) is None


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("", "'' has 0 fields; cron needs 5 (minute hour day-of-month month day-of-week)"),
        ("0 6 * *", "'0 6 * *' has 4 fields; cron needs 5"),
        ("0 0 6 * * *", "'0 0 6 * * *' has 6 fields; cron needs 5"),
        ("60 * * * *", "'60 * * * *' is not a valid cron expression"),
        ("0 24 * * *", "'0 24 * * *' is not a valid cron expression"),
        ("0 0 32 * *", "'0 0 32 * *' is not a valid cron expression"),
        ("0 0 * 13 *", "'0 0 * 13 *' is not a valid cron expression"),
        ("a b c d e", "'a b c d e' is not a valid cron expression"),
    ],
)
def test_invalid_cron(expr: str, message: str) -> None:
    problem = cron_problem(expr)

    assert problem is not None
    assert problem.startswith(message)


def test_next_fire_later_the_same_day() -> None:
    after = dt.datetime(2024, 1, 15, 5, 59, tzinfo=UTC)

    assert next_fire("0 6 * * *", after) == dt.datetime(2024, 1, 15, 6, 0, tzinfo=UTC)


def test_next_fire_is_strictly_after() -> None:
    at_six = dt.datetime(2024, 1, 15, 6, 0, tzinfo=UTC)

    assert next_fire("0 6 * * *", at_six) == dt.datetime(2024, 1, 16, 6, 0, tzinfo=UTC)


def test_next_fire_every_quarter_hour() -> None:
    after = dt.datetime(2024, 1, 15, 10, 7, 30, tzinfo=UTC)

    assert next_fire("*/15 * * * *", after) == dt.datetime(2024, 1, 15, 10, 15, tzinfo=UTC)


def test_next_fire_weekdays_skip_the_weekend() -> None:
    friday_evening = dt.datetime(2024, 1, 19, 18, 0, tzinfo=UTC)

    monday = next_fire("0 6 * * 1-5", friday_evening)

    assert monday == dt.datetime(2024, 1, 22, 6, 0, tzinfo=UTC)
    assert monday.weekday() == 0


def test_next_fire_keeps_the_time_zone_of_after() -> None:
    london = ZoneInfo("Europe/London")
    # The clocks go forward on 31 March 2024; 06:00 local is then 05:00 UTC.
    after = dt.datetime(2024, 3, 30, 12, 0, tzinfo=london)

    fire = next_fire("0 6 * * *", after)

    assert fire.tzinfo is not None
    assert fire == dt.datetime(2024, 3, 31, 6, 0, tzinfo=london)
    assert fire.astimezone(london).hour == 6
    assert fire.astimezone(UTC) == dt.datetime(2024, 3, 31, 5, 0, tzinfo=UTC)


def test_next_fire_steps_through_a_week() -> None:
    fire = dt.datetime(2024, 1, 1, 0, 0, tzinfo=UTC)
    fires = []
    for _ in range(7):
        fire = next_fire("0 6 * * *", fire)
        fires.append(fire)

    assert fires == [dt.datetime(2024, 1, day, 6, 0, tzinfo=UTC) for day in range(1, 8)]
