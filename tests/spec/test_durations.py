"""`parse_duration` and `format_duration`."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pit.spec.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("15m", 900.0),
        ("2h", 7200.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("1d", 86400.0),
        ("1.5h", 5400.0),
        ("2m30s", 150.0),
        ("1h0m5s250ms", 3605.25),
        ("  45s \n", 45.0),
        ("0s", 0.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "30",
        "s",
        "30 s",
        "1h 30m",
        "-5s",
        "+5s",
        "5sec",
        "5w",
        "1.5.5s",
        ".5s",
        "1h30",
        "m5",
    ],
)
def test_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration") as info:
        parse_duration(text)

    assert f"'{text}'" in str(info.value)
    assert "'30s', '15m', '1h30m' or '500ms'" in str(info.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0ms"),
        (0.85, "850ms"),
        (12.34, "12.3s"),
        (59.0, "59.0s"),
        (60.0, "1m00s"),
        (245.0, "4m05s"),
        (3599.0, "59m59s"),
        (3600.0, "1h00m"),
        (7380.0, "2h03m"),
        (90000.0, "25h00m"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@settings(max_examples=200, database=None)
@given(st.text())
def test_parse_duration_raises_only_value_error(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except ValueError:
        return
    assert seconds >= 0


duration_parts = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=10_000), st.sampled_from(["ms", "s", "m", "h", "d"])
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=200, database=None)
@given(duration_parts)
def test_parse_duration_adds_up_its_parts(parts: list[tuple[int, str]]) -> None:
    unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    text = "".join(f"{n}{u}" for n, u in parts)

    assert parse_duration(text) == pytest.approx(sum(n * unit[u] for n, u in parts))


@settings(max_examples=200, database=None)
@given(st.floats(min_value=0, max_value=10 * 86400, allow_nan=False))
def test_format_duration_reads_back_as_roughly_the_same_duration(seconds: float) -> None:
    # Seconds are dropped from the hour form, so it may lose up to a minute.
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=60)
