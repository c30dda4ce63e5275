"""A fake supervisor for the web app: canned answers and a record of calls."""

from __future__ import annotations

import itertools

import attrs
import trio

from pit.messages.webhook import RunAccepted, RunRejected, RunRequestAnswer

TOKEN = "supersecret123"


@attrs.define
class FakeBackend:
    """Implements `pit.web.app.WebhookBackend`: DAG `deploy` has a webhook with `TOKEN`, DAG
    `nightly` has none; runs are accepted unless `rejection` is set."""

    tokens: dict[str, str | None] = attrs.field(factory=lambda: {"deploy": TOKEN, "nightly": None})
    """DAG name -> its webhook token; None for a DAG without `[dag.webhook]`."""
    rejection: RunRejected | None = None
    """When set, `request_run` answers this instead of accepting."""
    failure: Exception | None = None
    """When set, `request_run` raises it (a supervisor bug, for the app's 500)."""
    hold: trio.Event | None = None
    """When set, `request_run` waits for it before answering (a request in flight)."""
    holding: trio.Event = attrs.field(factory=trio.Event)
    """Set when `request_run` starts waiting for `hold`."""
    cancelled: trio.Event = attrs.field(factory=trio.Event)
    """Set when a held `request_run` is cancelled."""
    stopping: bool = False
    requested: list[str] = attrs.field(factory=list)
    """The DAGs `request_run` was called for, in order."""
    _run_numbers: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1))

    def webhook_token(self, dag: str) -> str | None:
        return self.tokens.get(dag)

    async def request_run(self, dag: str) -> RunRequestAnswer:
        self.requested.append(dag)
        if self.failure is not None:
            raise self.failure
        if self.hold is not None:
            self.holding.set()
            try:
                await self.hold.wait()
            except trio.Cancelled:
                self.cancelled.set()
                raise
        if self.rejection is not None:
            return self.rejection
        return RunAccepted(run_id=f"20240115_143022.{next(self._run_numbers):03d}_{dag}")


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
