"""`Idempotency-Key`: a webhook or API trigger sent again (a sender that retries after a lost
answer) answers the first run's id instead of starting another.

A key is the DAG's: the same key for two DAGs is two keys. A key is kept once its request
started a run (a refused request keeps nothing: its retry may succeed), for `TTL`, in memory and
in `idempotency.jsonl` beside the run store (one line per key, appended and synced before the
answer), so a restarted pit serve still knows it; the file is rewritten without the expired
keys when pit serve starts. A repeat that arrives while the first request is still being
answered waits for that answer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs
import trio

from pit.clock import Clock
from pit.messages.webhook import RunAccepted, RunRejected, RunRequestAnswer
from pit.store.files import append_synced, write_atomically

HEADER = "Idempotency-Key"
TTL = dt.timedelta(hours=24)
MAX_KEY = 255
"""Characters a key may have."""
FILE = "idempotency.jsonl"
START_WAIT = 10.0
"""Seconds a keyed request waits for the supervisor's answer, even after its sender left."""


@attrs.define
class IdempotencyKeys:
    path: Path
    clock: Clock
    _known: dict[tuple[str, str], tuple[str, dt.datetime]] = attrs.field(factory=dict)
    """(dag, key) -> the run it started, and when."""
    _pending: dict[tuple[str, str], trio.Event] = attrs.field(factory=dict)

    @classmethod
    def load(cls, path: Path, clock: Clock) -> IdempotencyKeys:
        """The keys of `path` not expired, the file rewritten with those only. Blocking."""
        keys = cls(path, clock)
        now = clock.now()
        with contextlib.suppress(OSError):
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    entry = json.loads(line)
                    at = dt.datetime.fromisoformat(entry["at"])
                    if now - at < TTL:
                        keys._known[(entry["dag"], entry["key"])] = (entry["run_id"], at)
        with contextlib.suppress(OSError):
            keys._rewrite()
        return keys

    async def once(
        self, dag: str, key: str, start: Callable[[], Awaitable[RunRequestAnswer]]
    ) -> tuple[RunRequestAnswer, bool]:
        """The answer of the first request with `key` for `dag` (and True: a repeat), or of
        `start()` (and False) when there was none within `TTL`."""
        slot = (dag, key)
        while (waiting := self._pending.get(slot)) is not None:
            await waiting.wait()
        known = self._known.get(slot)
        if known is not None and self.clock.now() - known[1] < TTL:
            return RunAccepted(run_id=known[0]), True
        done = self._pending[slot] = trio.Event()
        try:
            # Shielded: a sender that hangs up after asking must not lose the key of the run
            # it started (its retry would start another). The supervisor answers at once.
            with trio.CancelScope(shield=True, deadline=trio.current_time() + START_WAIT) as asked:
                answer = await start()
            if asked.cancelled_caught:
                return RunRejected(reason="busy", message="no answer from pit; try again"), False
            if isinstance(answer, RunAccepted):
                at = self.clock.now()
                self._known[slot] = (answer.run_id, at)
                line = {"dag": dag, "key": key, "run_id": answer.run_id, "at": at.isoformat()}
                with trio.CancelScope(shield=True):  # the run started: its key must be kept
                    await trio.to_thread.run_sync(self._append, json.dumps(line) + "\n")
            return answer, False
        finally:
            del self._pending[slot]
            done.set()

    def _append(self, line: str) -> None:
        with contextlib.suppress(OSError):  # a full disk: the key still holds until a restart
            append_synced(self.path, line)

    def _rewrite(self) -> None:
        if not self._known and not self.path.exists():
            return
        lines = [
            json.dumps({"dag": dag, "key": key, "run_id": run_id, "at": at.isoformat()}) + "\n"
            for (dag, key), (run_id, at) in self._known.items()
        ]
        write_atomically(self.path, "".join(lines).encode())


def key_problem(key: str) -> str | None:
    """Why a header's value cannot be a key; None when it can."""
    if not key.strip():
        return f"{HEADER} is empty"
    if len(key) > MAX_KEY:
        return f"{HEADER} is over {MAX_KEY} characters"
    return None
