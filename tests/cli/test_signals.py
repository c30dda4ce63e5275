"""A stop signal repeated within a second is the same stop (systemd and uv deliver it twice)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from signal import SIGHUP, SIGINT, SIGTERM

import trio

from pit.cli.signals import REPEAT_WINDOW, StopSignals, forward_signals


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


async def test_forward_signals_turns_signals_into_stops_and_reloads(
    autojump_clock: trio.abc.Clock,
) -> None:
    said: list[str] = []

    async def arriving() -> AsyncIterator[int]:
        for wait, signum in [(0, SIGTERM), (0.001, SIGTERM), (0, SIGHUP), (2, SIGINT)]:
            await trio.sleep(wait)
            yield signum

    async def stop(now: bool) -> None:
        said.append("stop now" if now else "stop")

    async def reload() -> None:
        said.append("reload")

    await forward_signals(arriving(), stop=stop, reload=reload)

    assert said == ["stop", "reload", "stop now"]
