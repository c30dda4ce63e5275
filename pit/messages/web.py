"""What the web listener holds of the supervisor: a narrow handle, and nothing else.

The web app never calls into the supervisor. It reads two things the supervisor keeps current
(the webhook tokens, a snapshot replaced on every reload; the stopping event) and sends one
message (`RunRequested`, with a reply channel) to the supervisor's inbox, like any trigger.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import attrs
import trio

from pit.messages.trigger import SupervisorInbox


@attrs.define
class WebhookTokens:
    """The bearer token of every DAG with a `[dag.webhook]`, as last loaded. The supervisor
    replaces `by_dag` whole on a reload; readers never see half of one."""

    by_dag: Mapping[str, str | None] = attrs.field(factory=dict)
    """DAG name -> its resolved token; None when the DAG has a webhook whose token cannot be
    read (no secrets file, the secret missing): its webhook answers 503 until that is fixed. A
    DAG not here has no webhook (404)."""


@attrs.frozen(kw_only=True)
class WebHandle:
    inbox: trio.MemorySendChannel[SupervisorInbox]
    """The supervisor's inbox: a webhook's `RunRequested` goes here."""
    tokens: WebhookTokens
    stopping: trio.Event
    """Set once pit is shutting down: new webhooks are answered 503."""


class WebListener(Protocol):
    """Serves the webhook app on `handle` until `shutdown` is set; reports its port. The CLI
    gives one to the supervisor (actors may not import `pit.web`)."""

    async def __call__(
        self, handle: WebHandle, shutdown: trio.Event, *, task_status: trio.TaskStatus[int]
    ) -> None: ...
