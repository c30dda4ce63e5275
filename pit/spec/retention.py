"""How long a DAG's runs are kept: `keep_runs`, `keep_days` (in `[dag]` or `pit_config.toml`)
and `archive_logs_after` (`pit_config.toml`). Applied by `pit.store.retention`."""

from __future__ import annotations

import attrs


@attrs.frozen(kw_only=True)
class Retention:
    keep_runs: int | None = None
    """Keep this many of a DAG's newest ended runs; None: all."""
    keep_days: int | None = None
    """Keep the runs that ended within this many days; None: all."""
    archive_logs_after: float | None = None
    """Seconds after a run's end when its task logs are compressed; None: never."""

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.keep_runs, self.keep_days, self.archive_logs_after))
