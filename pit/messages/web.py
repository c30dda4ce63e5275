"""What the web listener holds of the supervisor: a narrow handle, and nothing else.

The web app never calls into the supervisor. It reads what the supervisor keeps current (what
is served: the DAGs and the tokens, replaced on every reload; the stopping event), reads the
runs from the run store and the run folders, and sends messages to the supervisor's inbox:
`RunRequested` (a webhook, the API's trigger), like any trigger, and `CancelRequested`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import attrs
import trio

from pit.clock import Clock, SystemClock
from pit.messages.run import RunRecord
from pit.messages.trigger import SupervisorInbox
from pit.spec.dag import DagSpec


@attrs.frozen(kw_only=True)
class ApiTokens:
    """The API's bearer tokens: the values of the secrets pit_config.toml's `api_token` and
    `api_read_token` name."""

    full: str | None = None
    """Reads and steers (trigger, cancel); None when not configured."""
    read_only: str | None = None
    """Reads only (every GET); None when not configured."""
    unreadable: str | None = None
    """Why a token that is configured cannot be read (no secrets file, no such secret): the
    API answers 503 until that is fixed, rather than open up."""

    @property
    def local_only(self) -> bool:
        """No token is configured: the API answers clients on this machine only."""
        return self.full is None and self.read_only is None and self.unreadable is None


@attrs.define
class Served:
    """What pit serve serves, as last loaded. The supervisor assigns every field afresh on a
    reload, in one step of its task, so a request never sees half of one reload."""

    dags: Mapping[str, DagSpec] = attrs.field(factory=dict)
    """The DAGs served, by name."""
    webhook_tokens: Mapping[str, str | None] = attrs.field(factory=dict)
    """DAG name -> its resolved webhook token; None when the DAG has a webhook whose token
    cannot be read (no secrets file, the secret missing): its webhook answers 503 until that
    is fixed. A DAG not here has no webhook (404)."""
    api: ApiTokens = attrs.field(factory=ApiTokens)
    paused: frozenset[str] = frozenset()
    """The DAGs paused (their triggers start nothing)."""


TASK_SECONDS_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0)
"""Upper bounds of the task duration histogram, in seconds (and +Inf)."""


@attrs.define
class ServeMetrics:
    """What `GET /metrics` reports, kept by the supervisor as runs are accepted and end (all
    since this pit serve started, as Prometheus counters are)."""

    runs_started: dict[str, int] = attrs.field(factory=dict)
    """DAG -> runs accepted."""
    runs_finished: dict[tuple[str, str], int] = attrs.field(factory=dict)
    """(DAG, final state) -> runs ended."""
    task_seconds: dict[str, list[int]] = attrs.field(factory=dict)
    """DAG -> the count of task attempts per bucket of `TASK_SECONDS_BUCKETS` (and +Inf)."""
    task_seconds_sum: dict[str, float] = attrs.field(factory=dict)
    active_runs: int = 0
    queued_runs: int = 0
    trigger_lag: dict[str, float] = attrs.field(factory=dict)
    """DAG -> seconds from its last cron fire time to the run being accepted."""
    executor_restarts: int = 0

    def started(self, dag: str) -> None:
        self.runs_started[dag] = self.runs_started.get(dag, 0) + 1

    def ended(self, record: RunRecord) -> None:
        key = (record.dag, record.state.value)
        self.runs_finished[key] = self.runs_finished.get(key, 0) + 1
        buckets = self.task_seconds.setdefault(record.dag, [0] * (len(TASK_SECONDS_BUCKETS) + 1))
        for task in record.tasks:
            if task.started_at is None or task.ended_at is None:
                continue
            seconds = (task.ended_at - task.started_at).total_seconds()
            slot = next(
                (i for i, bound in enumerate(TASK_SECONDS_BUCKETS) if seconds <= bound),
                len(TASK_SECONDS_BUCKETS),
            )
            buckets[slot] += 1
            self.task_seconds_sum[record.dag] = self.task_seconds_sum.get(record.dag, 0) + seconds


@attrs.frozen(kw_only=True)
class WebHandle:
    inbox: trio.MemorySendChannel[SupervisorInbox]
    """The supervisor's inbox: a webhook's or the API's `RunRequested`, the API's
    `CancelRequested`, go here."""
    served: Served
    stopping: trio.Event
    """Set once pit is shutting down: new webhooks are answered 503."""
    runs_dir: Path
    """The run folders, where the API reads logs and runs not yet in the store."""
    store: Path
    """The run store, which the API reads on connections of its own."""
    metrics: ServeMetrics = attrs.field(factory=ServeMetrics)
    clock: Clock = attrs.field(factory=SystemClock)
    """What the API reckons next fire times from."""


class WebListener(Protocol):
    """Serves the webhook app on `handle` until `shutdown` is set; reports its port. The CLI
    gives one to the supervisor (actors may not import `pit.web`)."""

    async def __call__(
        self, handle: WebHandle, shutdown: trio.Event, *, task_status: trio.TaskStatus[int]
    ) -> None: ...
