"""A fake supervisor for the web app: the `WebHandle` it is built on, canned answers to the
`RunRequested` the app sends, and a record of them."""

from __future__ import annotations

import contextlib
import itertools
import tempfile
from pathlib import Path

import attrs
import trio

from pit.messages.trigger import RunRequested, SupervisorInbox
from pit.messages.web import Served, WebHandle
from pit.messages.webhook import RunAccepted, RunRejected

TOKEN = "supersecret123"


@attrs.define
class FakeBackend:
    """DAG `deploy` has a webhook with `TOKEN`; no other DAG has one. Runs are accepted unless
    `rejection` is set. `answer_requests` must run for webhooks to get an answer."""

    tokens: dict[str, str | None] = attrs.field(factory=lambda: {"deploy": TOKEN})
    """DAG name -> its webhook token (None: it cannot be read); the handle reads this dict."""
    rejection: RunRejected | None = None
    """When set, a request is answered this instead of accepted."""
    failure: bool = False
    """When set, a request gets no answer at all (a supervisor bug, for the app's 500)."""
    hold: trio.Event | None = None
    """When set, a request is answered only once it is set (a request in flight)."""
    holding: trio.Event = attrs.field(factory=trio.Event)
    """Set when a request starts waiting for `hold`."""
    cancelled: trio.Event = attrs.field(factory=trio.Event)
    """Set when the app stopped waiting for a held request (its client went away)."""
    requested: list[str] = attrs.field(factory=list)
    """The DAGs runs were requested for, in order."""
    handle: WebHandle = attrs.field(init=False)
    _requests: trio.MemoryReceiveChannel[SupervisorInbox] = attrs.field(init=False)
    _run_numbers: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1))

    runs_dir: Path = attrs.field(factory=lambda: Path(tempfile.mkdtemp(prefix="pit-web-")))
    """Where the app looks for run folders and its store (`.pit/pit.db` beside them)."""

    def __attrs_post_init__(self) -> None:
        inbox, self._requests = trio.open_memory_channel[SupervisorInbox](64)
        self.handle = WebHandle(
            inbox=inbox,
            served=Served(webhook_tokens=self.tokens),
            stopping=trio.Event(),
            runs_dir=self.runs_dir,
            store=self.runs_dir / ".pit" / "pit.db",
        )

    @property
    def stopping(self) -> bool:
        return self.handle.stopping.is_set()

    @stopping.setter
    def stopping(self, value: bool) -> None:
        assert value, "pit does not stop stopping"
        self.handle.stopping.set()

    async def answer_requests(self) -> None:
        """Answer every request the app sends, as the supervisor would (one at a time)."""
        async for message in self._requests:
            assert isinstance(message, RunRequested), message
            assert message.reply is not None
            async with message.reply as reply:
                self.requested.append(message.dag)
                if self.failure:
                    continue
                if self.hold is not None and not await self._held(reply):
                    continue
                answer = self.rejection or RunAccepted(
                    run_id=f"20240115_143022.{next(self._run_numbers):03d}_{message.dag}"
                )
                # As the supervisor does: a client that went away has closed its end.
                with contextlib.suppress(trio.BrokenResourceError):
                    await reply.send(answer)

    async def _held(self, reply: trio.MemorySendChannel[object]) -> bool:
        """Wait for `hold`; False if the app stopped waiting for the answer meanwhile."""
        assert self.hold is not None
        self.holding.set()
        while not self.hold.is_set():
            if reply.statistics().open_receive_channels == 0:
                self.cancelled.set()
                return False
            with trio.move_on_after(0.01):
                await self.hold.wait()
        return True


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
