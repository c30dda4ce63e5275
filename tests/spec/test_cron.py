"""`cron_problem` and `next_fire`: cron as pure functions of their inputs."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from pit.spec.cron import cron_problem, next_fire, timezone_problem

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
        ("60 * * * *", "'60 * * * *': minute field '60' out of range 0-59"),
        ("0 24 * * *", "'0 24 * * *': hour field '24' out of range 0-23"),
        ("0 0 32 * *", "'0 0 32 * *': day-of-month field '32' out of range 1-31"),
        ("0 0 * 13 *", "'0 0 * 13 *': month field '13' out of range 1-12"),
        ("0 0 * * 8", "'0 0 * * 8': day-of-week field '8' out of range 0-7"),
        ("1-70/5 * * * *", "'1-70/5 * * * *': minute field '70' out of range 0-59"),
        ("*/0 * * * *", "'*/0 * * * *': minute field '*/0': the step must be a number of 1"),
        ("0 0 31 2 *", "'0 0 31 2 *' never fires (no such date)"),
        ("1" * 5000 + " * * * *", "'1111111111111111111111111111111111111111...' (5008 "),
        ("a b c d e", "'a b c d e' is not a valid cron expression"),
    ],
)
def test_invalid_cron(expr: str, message: str) -> None:
    problem = cron_problem(expr)

    assert problem is not None
    assert problem.startswith(message)


def test_next_fire_later_the_same_day() -> None:
    after = dt.datetime(2024, 1, 15, 5, 59, tzinfo=UTC)

    assert next_fire("0 6 * * *", after, UTC) == dt.datetime(2024, 1, 15, 6, 0, tzinfo=UTC)


def test_next_fire_is_strictly_after() -> None:
    at_six = dt.datetime(2024, 1, 15, 6, 0, tzinfo=UTC)

    assert next_fire("0 6 * * *", at_six, UTC) == dt.datetime(2024, 1, 16, 6, 0, tzinfo=UTC)


def test_next_fire_every_quarter_hour() -> None:
    after = dt.datetime(2024, 1, 15, 10, 7, 30, tzinfo=UTC)

    assert next_fire("*/15 * * * *", after, UTC) == dt.datetime(2024, 1, 15, 10, 15, tzinfo=UTC)


def test_next_fire_weekdays_skip_the_weekend() -> None:
    friday_evening = dt.datetime(2024, 1, 19, 18, 0, tzinfo=UTC)

    monday = next_fire("0 6 * * 1-5", friday_evening, UTC)

    assert monday == dt.datetime(2024, 1, 22, 6, 0, tzinfo=UTC)
    assert monday.weekday() == 0


def test_next_fire_reads_the_wall_clock_of_its_zone() -> None:
    london = ZoneInfo("Europe/London")
    # The clocks go forward on 31 March 2024; 06:00 local is then 05:00 UTC.
    after = dt.datetime(2024, 3, 30, 12, 0, tzinfo=london)

    fire = next_fire("0 6 * * *", after, london)

    assert fire.tzinfo is not None
    assert fire == dt.datetime(2024, 3, 31, 6, 0, tzinfo=london)
    assert fire.astimezone(london).hour == 6
    assert fire.astimezone(UTC) == dt.datetime(2024, 3, 31, 5, 0, tzinfo=UTC)


def test_next_fire_steps_through_a_week() -> None:
    fire = dt.datetime(2024, 1, 1, 0, 0, tzinfo=UTC)
    fires = []
    for _ in range(7):
        fire = next_fire("0 6 * * *", fire, UTC)
        fires.append(fire)

    assert fires == [dt.datetime(2024, 1, day, 6, 0, tzinfo=UTC) for day in range(1, 8)]


BERLIN = ZoneInfo("Europe/Berlin")


def test_a_minute_the_autumn_change_repeats_fires_once() -> None:
    # 25 October 2026: 03:00 CEST becomes 02:00 CET, so 02:30 happens twice.
    fire = dt.datetime(2026, 10, 24, 12, 0, tzinfo=BERLIN)
    fires = []
    for _ in range(3):
        fire = next_fire("30 2 * * *", fire, BERLIN)
        fires.append((fire.day, fire.hour, fire.minute, fire.utcoffset()))
    assert fires == [
        (25, 2, 30, dt.timedelta(hours=2)),  # the first 02:30 (CEST) only
        (26, 2, 30, dt.timedelta(hours=1)),
        (27, 2, 30, dt.timedelta(hours=1)),
    ]


def test_every_quarter_hour_through_the_repeated_hour_fires_each_wall_minute_once() -> None:
    fire = dt.datetime(2026, 10, 25, 1, 50, tzinfo=BERLIN)
    walls = []
    for _ in range(8):
        fire = next_fire("*/15 * * * *", fire, BERLIN)
        walls.append(f"{fire:%H:%M%z}")
    assert walls == [
        "02:00+0200",
        "02:15+0200",
        "02:30+0200",
        "02:45+0200",
        "03:00+0100",
        "03:15+0100",
        "03:30+0100",
        "03:45+0100",
    ]


def test_a_minute_the_spring_change_skips_fires_at_the_next_valid_time() -> None:
    # 29 March 2026: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that night.
    fire = next_fire("30 2 * * *", dt.datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN), BERLIN)
    assert (fire.day, fire.hour, fire.minute) == (29, 3, 0)
    fire = next_fire("30 2 * * *", fire, BERLIN)
    assert (fire.day, fire.hour, fire.minute) == (30, 2, 30)


def test_timezone_names_are_checked() -> None:
    assert timezone_problem("Europe/Berlin") is None
    assert "not a time zone" in (timezone_problem("Mars/Olympus") or "")
