"""The scheduler's conversation: triggers (cron, webhook, FTP watch) ask the supervisor for
runs; the supervisor answers and reports how they ended."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import attrs
import trio

from pit.messages.run import RunEnded
from pit.messages.webhook import RunRequestAnswer


@attrs.frozen(kw_only=True)
class Rerun:
    """What a re-run re-runs (see `pit.actors.plans.plan_rerun`)."""

    of: str
    """The run re-run: its succeeded tasks are reused, its snapshot is the code."""
    tasks: tuple[str, ...] | None = None
    """Run these and their downstream tasks; None: the tasks that did not succeed."""
    latest_code: bool = False


@attrs.frozen(kw_only=True)
class RunRequested:
    dag: str
    trigger: str
    """"cron", "webhook", "ftp", "api" (recorded on the run)."""
    scheduled_time: dt.datetime | None = None
    """The cron fire time, given to tasks as PIT_SCHEDULED_TIME."""
    seed_files: tuple[Path, ...] = ()
    """Files copied into the run's data/ before its first task (an FTP drop)."""
    rerun: Rerun | None = None
    params: Mapping[str, object] = attrs.field(factory=dict)
    """The params given (text or JSON values), checked against the DAG's `[dag.params]` when
    the run is asked for; the defaults fill the rest."""
    reply: trio.MemorySendChannel[RunRequestAnswer] | None = None
    ended: trio.MemorySendChannel[RunEnded] | None = None
    """Told when the run ends, if it was accepted. Buffered: the supervisor never waits on it
    (a full channel misses the news)."""


@attrs.frozen(kw_only=True)
class Reload:
    """Re-read every pit.toml (SIGHUP)."""


@attrs.frozen(kw_only=True)
class Stop:
    """Stop triggers, refuse new runs, let active runs finish within the grace period, then
    stop them; `now` stops them at once (a second signal)."""

    now: bool = False


CancelAnswer = Literal["cancelling", "cancelled", "unknown"]
"""`cancelling`: the run is active and is being stopped; `cancelled`: it was waiting for its
turn and is recorded as cancelled now; `unknown`: this pit serve neither runs it nor holds it
(ended, or never one of its runs)."""


@attrs.frozen(kw_only=True)
class CancelRequested:
    """Cancel one run (the API's `POST /api/runs/{id}/cancel`); it ends `cancelled`, its
    error saying `by` whom."""

    run_id: str
    by: str
    reply: trio.MemorySendChannel[CancelAnswer]


@attrs.frozen(kw_only=True)
class PauseRequested:
    """Pause a DAG (`pause`) or resume it: a paused DAG's schedule, FTP watch and webhook start
    nothing, runs asked for by hand still start. Answered whether pit serve serves the DAG."""

    dag: str
    pause: bool
    by: str
    reply: trio.MemorySendChannel[bool]


SupervisorInbox = RunRequested | CancelRequested | PauseRequested | RunEnded | Reload | Stop


@attrs.frozen(kw_only=True)
class SupervisorHandle:
    """What a started supervisor gives back: its inbox and where its webhook listener is."""

    inbox: trio.MemorySendChannel[SupervisorInbox]
    web_port: int | None
    """The port the webhook listener is bound to; None when no DAG has a webhook."""
