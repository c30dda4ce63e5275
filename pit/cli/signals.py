"""What a stop signal means: the first asks runs to stop, a later one kills them now."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Awaitable, Callable

import attrs

REPEAT_WINDOW = 1.0
"""Seconds after a first SIGINT/SIGTERM during which another is the same stop, not a second one:
`kill -TERM -<pgid>` (systemd's default KillMode, `timeout`) reaches pit twice under `uv run`,
once directly and once forwarded by uv, milliseconds apart. A person pressing Ctrl-C again to
mean "now" takes longer than that."""


@attrs.define
class StopSignals:
    """Counts stop signals, a repeat within `REPEAT_WINDOW` of the first counting as none."""

    first_at: float | None = None
    count: int = 0

    def take(self, now: float) -> int | None:
        """1 for the first stop, 2 (or more) for a later one; None for a repeat of the first."""
        if self.first_at is None:
            self.first_at = now
        elif self.count == 1 and now - self.first_at < REPEAT_WINDOW:
            return None
        self.count += 1
        return self.count


async def forward_signals(
    signals: AsyncIterator[int],
    *,
    stop: Callable[[bool], Awaitable[None]],
    reload: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Turn SIGINT/SIGTERM into `stop(now)`: the first asks, a later one (`REPEAT_WINDOW` after
    it) means now; SIGHUP into `reload()`. For `pit run` and `pit serve` alike."""
    import trio  # here, not at the top: every command imports this module, few need trio

    stops = StopSignals()
    async for signum in signals:
        if signum == signal.SIGHUP:
            if reload is not None:
                await reload()
        elif (count := stops.take(trio.current_time())) is not None:
            await stop(count > 1)
