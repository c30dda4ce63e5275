"""pit judges plain cron expressions itself (croniter is slow to import); it must agree with
croniter on every expression it judges."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pit.spec.cron import (
    _FIELDS,
    Verdict,
    _field_problem,
    cron_problem,
    croniter_next_fire,
    croniter_verdict,
    plain_next_fire,
    plain_verdict,
)


def field(low: int, high: int, *, days: bool) -> st.SearchStrategy[str]:
    number = st.integers(low, high).map(str)
    ranged = st.tuples(st.integers(low, high), st.integers(low, high)).map(
        lambda r: f"{r[0]}-{r[1]}"
    )
    base = st.one_of(st.just("*"), number, ranged)
    stepped = st.tuples(base, st.integers(1, high + 2)).map(lambda b: f"{b[0]}/{b[1]}")
    item = st.one_of(base, stepped, st.sampled_from(["?", "L", "1#2", "MON", "jan", "15W"]))
    whole = st.lists(item, min_size=1, max_size=3).map(",".join)
    return st.one_of(whole, st.just("?")) if days else whole


EXPRESSIONS = st.tuples(
    *(field(low, high, days=index in (2, 4)) for index, (_, low, high) in enumerate(_FIELDS))
).map(" ".join)


@settings(max_examples=600, deadline=None)
@given(expr=EXPRESSIONS)
@example(expr="0 0 30 2 *")
@example(expr="0 0 31 4,6,9,11 *")
@example(expr="0 0 29 2 *")
@example(expr="0 0 30 2 1")
@example(expr="0 0 30 2 ?")
@example(expr="*/15 9-17 * * 1-5")
@example(expr="0 0 5-5 * *")
@example(expr="0 0 * 12-1 *")
def test_where_pit_judges_a_cron_expression_croniter_agrees(expr: str) -> None:
    fields = expr.split()
    in_range = all(
        _field_problem(text, name, low, high) is None
        for text, (name, low, high) in zip(fields, _FIELDS, strict=True)
    )
    verdict = plain_verdict(fields) if in_range else None
    if verdict is not None:
        assert verdict == croniter_verdict(expr)


@pytest.mark.parametrize(
    ("expr", "verdict"),
    [
        ("0 6 * * *", Verdict.FIRES),
        ("*/15 9-17 * * 1-5", Verdict.FIRES),
        ("0 0 30 2 *", Verdict.NEVER),
        ("0 0 31 4,6,9,11 ?", Verdict.NEVER),
        ("0 0 29 2 *", Verdict.FIRES),
        ("0 0 30 2 1", Verdict.FIRES),
    ],
)
def test_plain_expressions_are_judged_without_croniter(expr: str, verdict: Verdict) -> None:
    assert plain_verdict(expr.split()) == verdict


@pytest.mark.parametrize("expr", ["0 0 L * *", "0 0 * JAN *", "0 0 * * 1#2", "0 0 5-5 * *"])
def test_the_rest_is_left_to_croniter(expr: str) -> None:
    assert plain_verdict(expr.split()) is None
    assert cron_problem(expr) is None


def test_a_date_that_never_comes_is_named() -> None:
    assert cron_problem("0 0 30 2 *") == "'0 0 30 2 *' never fires (no such date)"


# --- fire times: pit's own against croniter's, across daylight saving changes -------------------

ZONES = ["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe"]  # the last: 30 min
DST_EDGES = [
    dt.datetime(2026, 3, 8, 6, tzinfo=dt.UTC),  # New York springs forward
    dt.datetime(2026, 3, 29, 0, tzinfo=dt.UTC),  # Paris springs forward
    dt.datetime(2026, 10, 25, 0, tzinfo=dt.UTC),  # Paris falls back
    dt.datetime(2026, 11, 1, 5, tzinfo=dt.UTC),  # New York falls back
    dt.datetime(2026, 4, 4, 14, tzinfo=dt.UTC),  # Lord Howe falls back half an hour
    dt.datetime(2026, 10, 3, 15, tzinfo=dt.UTC),  # and springs forward
]
INSTANTS = st.one_of(
    st.tuples(st.sampled_from(DST_EDGES), st.integers(-180, 180)).map(
        lambda edge: edge[0] + dt.timedelta(minutes=edge[1])
    ),
    st.integers(0, 3 * 525_600).map(
        lambda minutes: dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=minutes)
    ),
)


@settings(max_examples=500, deadline=None)
@given(expr=EXPRESSIONS, after=INSTANTS, zone=st.sampled_from(ZONES))
@example(expr="30 2 * * *", after=dt.datetime(2026, 3, 29, 0, tzinfo=dt.UTC), zone="Europe/Paris")
@example(
    expr="30 2 * * *", after=dt.datetime(2026, 10, 25, 0, 31, tzinfo=dt.UTC), zone="Europe/Paris"
)
@example(
    expr="*/15 1-3 * * *", after=dt.datetime(2026, 3, 8, 6, tzinfo=dt.UTC), zone="America/New_York"
)
@example(expr="0 0 29 2 *", after=dt.datetime(2026, 3, 1, tzinfo=dt.UTC), zone="UTC")
@example(expr="0 0 13 * 5", after=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), zone="UTC")  # or
def test_pits_fire_times_are_croniters(expr: str, after: dt.datetime, zone: str) -> None:
    tz = zoneinfo.ZoneInfo(zone)
    ours = plain_next_fire(expr, after, tz)
    if ours is not None:
        assert ours == croniter_next_fire(expr, after, tz)
