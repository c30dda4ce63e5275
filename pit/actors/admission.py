"""Which requested runs of `pit serve` start, wait or are refused: pure decisions, no I/O.

`Admission` holds the one registry of the runs pit serve has accepted and not yet seen end:
those waiting (behind an active run of their DAG, `overlap = "queue"`, or for a slot under
`max_active_runs`) and those active. Its methods take what happened (a request, a run's end, a
stop) and return what to do; the supervisor does it (makes the run's folder, starts the run,
records a run that will never start). In the manner of h11's state machine and dagu's tick
planner: the rules are tested as plain functions, with no loop, process or socket.
"""

from __future__ import annotations

from collections import deque

import attrs

from pit.messages.webhook import RejectReason
from pit.spec.dag import Overlap

_WAITING = (Overlap.QUEUE, Overlap.LATEST)
"""The policies under which a run waits behind its DAG's active run."""


@attrs.frozen(kw_only=True)
class Refuse:
    """Do not accept the request."""

    reason: RejectReason
    message: str


@attrs.frozen(kw_only=True)
class Accept:
    """Accept the request: make its run's folder, then tell `Admission.admit` the run id."""

    waits: bool
    """It waits for its turn (queued behind its DAG's run, or for a slot)."""


@attrs.frozen(kw_only=True)
class Start:
    """Start this accepted run now."""

    run_id: str


@attrs.frozen(kw_only=True)
class Drop:
    """This accepted run will never start (pit is stopping): record it as cancelled."""

    run_id: str


@attrs.frozen(kw_only=True)
class _Waiting:
    run_id: str
    dag: str
    behind_its_dag: bool
    """Queued behind an active run of its DAG (`overlap = "queue"`); otherwise it waits for
    a slot under max_active_runs."""


@attrs.define(kw_only=True)
class Admission:
    max_active_runs: int | None = None
    max_queued_runs: int = 100
    stopping: bool = False
    _active: dict[str, str] = attrs.field(factory=dict)
    """Run id -> its DAG, for runs started and not ended."""
    _waiting: deque[_Waiting] = attrs.field(factory=deque)
    """Accepted runs not started, in the order they were accepted."""

    # --- what happened -> what to do ----------------------------------------------------------

    def consider(self, dag: str, overlap: Overlap | None) -> Accept | Refuse:
        """A run of `dag` is requested; `overlap` is its policy, None when no such DAG."""
        if self.stopping:
            return Refuse(reason="stopping", message="pit is shutting down")
        if overlap is None:
            return Refuse(reason="unknown", message=f"no DAG named '{dag}'")
        # Runs of this DAG started, or accepted and waiting for a slot.
        occupied = [*self.active_runs(dag), *(w.run_id for w in self._waiting if w.dag == dag)]
        queued = any(w.dag == dag and w.behind_its_dag for w in self._waiting)
        if occupied and overlap is Overlap.SKIP:
            return Refuse(
                reason="overlap",
                message=f"a run of {dag} is active ({', '.join(occupied)}); overlap = skip",
            )
        if occupied and overlap is Overlap.QUEUE and queued:
            return Refuse(
                reason="overlap", message=f"a run of {dag} is active and another is waiting"
            )
        waits = bool(occupied and overlap in _WAITING) or self._full()
        if waits and overlap is Overlap.LATEST and queued:
            return Accept(waits=True)  # it takes the place of the one waiting
        if waits and len(self._waiting) >= self.max_queued_runs:
            return Refuse(
                reason="busy",
                message=f"{len(self._waiting)} runs are waiting already (max_queued_runs); "
                "try again later",
            )
        return Accept(waits=waits)

    def admit(self, run_id: str, dag: str, overlap: Overlap) -> Start | None:
        """The accepted run got its id (its folder is made): start it now, or None (it waits)."""
        behind = overlap in _WAITING and bool(
            self.active_runs(dag) or any(w.dag == dag for w in self._waiting)
        )
        if behind or self._full():
            self._waiting.append(_Waiting(run_id=run_id, dag=dag, behind_its_dag=behind))
            return None
        self._active[run_id] = dag
        return Start(run_id=run_id)

    def supersede(self, run_id: str, dag: str) -> list[Drop]:
        """`overlap = "latest"`: the runs of `dag` waiting behind its active run before
        `run_id` will never start (record them as cancelled)."""
        older = {w.run_id for w in self._waiting if w.dag == dag and w.behind_its_dag} - {run_id}
        self._waiting = deque(w for w in self._waiting if w.run_id not in older)
        return [Drop(run_id=old) for old in sorted(older)]

    def ended(self, run_id: str) -> list[Start]:
        """A run ended (or, waiting, will never start): the runs that start in its place."""
        self._active.pop(run_id, None)
        self._waiting = deque(w for w in self._waiting if w.run_id != run_id)
        if self.stopping:
            return []
        starts = []
        for waiting in list(self._waiting):
            if self._full():
                break
            if waiting.behind_its_dag and self.active_runs(waiting.dag):
                continue
            self._waiting.remove(waiting)
            self._active[waiting.run_id] = waiting.dag
            starts.append(Start(run_id=waiting.run_id))
        return starts

    def stop(self) -> list[Drop]:
        """pit is stopping: no run is accepted any more, and the waiting ones never start."""
        self.stopping = True
        dropped = [Drop(run_id=w.run_id) for w in self._waiting]
        self._waiting.clear()
        return dropped

    # --- what is -------------------------------------------------------------------------------

    def active_runs(self, dag: str | None = None) -> list[str]:
        """Ids of the runs started and not ended (of `dag`), oldest first."""
        return [run_id for run_id, of in self._active.items() if dag is None or of == dag]

    def waiting_runs(self) -> list[str]:
        return [w.run_id for w in self._waiting]

    @property
    def idle(self) -> bool:
        """Nothing active (pit serve may end once it is stopping and idle)."""
        return not self._active

    def _full(self) -> bool:
        return self.max_active_runs is not None and len(self._active) >= self.max_active_runs
