"""A stop signal repeated within a second is the same stop (systemd and uv deliver it twice)."""

from __future__ import annotations

from pit.cli.signals import REPEAT_WINDOW, StopSignals


def test_a_repeat_within_the_window_is_no_second_stop() -> None:
    stops = StopSignals()
    assert stops.take(100.0) == 1
    assert stops.take(100.001) is None
    assert stops.take(100.0 + REPEAT_WINDOW - 0.01) is None


def test_a_signal_after_the_window_is_the_second_stop_and_later_ones_count_on() -> None:
    stops = StopSignals()
    assert stops.take(5.0) == 1
    assert stops.take(5.0 + REPEAT_WINDOW) == 2
    assert stops.take(5.0 + REPEAT_WINDOW + 0.001) == 3
