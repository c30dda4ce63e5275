"""The conversation between `pit serve` and its executor process, which runs what it starts.

These cross a process boundary (pickled over a socket pair), so they hold plain data only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import attrs

from pit.messages.run import RunEnded, RunPlan
from pit.spec.secrets import Secrets


def _plain(env: Mapping[str, str]) -> dict[str, str]:
    return dict(env)


@attrs.frozen(kw_only=True)
class ExecutorSetup:
    """The first message to a new executor: what every run it executes shares."""

    env: Mapping[str, str] = attrs.field(converter=_plain)
    """A plain dict (os.environ itself does not pickle)."""
    secrets: Secrets | None
    stream_output: bool = False
    """Log every line of task output (`pit serve --verbose`)."""
    store: Path | None = None
    """The run store the executor keeps current (`store/runstore.py`); None: no store."""
    runs_dir: Path | None = None
    """The runs the store indexes."""


@attrs.frozen(kw_only=True)
class Execute:
    """Run `request` in the run folder the supervisor made (`run_dir`, named by the run id)."""

    request: RunPlan
    run_dir: Path


@attrs.frozen(kw_only=True)
class CancelExecution:
    """Stop a run (CancelRun); one not started yet is stopped as soon as it starts."""

    run_id: str
    kill: bool = False
    by: str | None = None
    """Who cancels it (the API's caller), for the run's error; None: pit serve stopping."""


ToExecutor = ExecutorSetup | Execute | CancelExecution
FromExecutor = RunEnded
"""The executor's only report: a run it was given has ended (its run.json says how)."""
