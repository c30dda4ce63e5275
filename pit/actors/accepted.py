"""The runs `pit serve` accepted, from the request to the end, for the supervisor.

`AcceptedRuns` carries out what the `Admission` decides: it makes an accepted run's folder (so
a webhook is answered with its run id at once), hands the runs that start to the executor,
records the ones that never will, and tells each requester how its run ended. It runs in the
supervisor's task: every method is called from the supervisor's inbox loop.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

import attrs
import trio

from pit.actors.admission import Admission, Refuse, Start
from pit.actors.executor_process import ExecutorProcess
from pit.clock import Clock, zone_of
from pit.errors import RunError
from pit.messages.run import RunEnded, RunPlan, RunRecord, TaskRecord
from pit.messages.trigger import CancelAnswer, RunRequested
from pit.messages.web import ServeMetrics
from pit.messages.webhook import RejectReason, RunAccepted, RunRejected, RunRequestAnswer
from pit.spec.dag import DagSpec, Overlap
from pit.spec.params import ParamError, Params, param_values, resolve_params
from pit.spec.states import CANCELLED
from pit.store.owner import this_process
from pit.store.rundir import (
    RunPaths,
    claim_fire_dir,
    claim_run_dir,
    never_started,
    write_manifest,
)

log = logging.getLogger("pit.serve")


@attrs.define(kw_only=True)
class _Accepted:
    """What is kept of a run accepted, until it ends: who asked, where."""

    request: RunRequested
    paths: RunPaths
    params: Params
    """Its params, resolved when it was accepted (a re-run's: those of the run re-run)."""


@attrs.define(kw_only=True)
class AcceptedRuns:
    admission: Admission
    executor: ExecutorProcess
    clock: Clock
    plan: Callable[[RunRequested], RunPlan | str]
    """The run's plan from the DAGs served now, or why it cannot start (its DAG gone...)."""
    nursery: trio.Nursery
    """Where the record of a run that will never start is written."""
    metrics: ServeMetrics = attrs.field(factory=ServeMetrics)
    index: Callable[[RunRecord], None] = lambda record: None
    """Hands a record written here to the run store (pit serve's own `StoreWriter`)."""
    _accepted: dict[str, _Accepted] = attrs.field(init=False, factory=dict)
    """Run id -> its request and folder, for every run the admission holds."""

    def request(
        self, request: RunRequested, dag: DagSpec | None, runs_dir: Path
    ) -> RunRequestAnswer:
        """A run of `dag` (None: no such DAG) is requested: accept it, and start it if its
        turn has come, or refuse it."""
        params: Params = {}
        if dag is not None and request.rerun is None:
            logical = request.scheduled_time or self.clock.now()
            try:
                params = resolve_params(
                    dag.params, request.params, logical=logical, zone=zone_of(dag.timezone)
                )
            except ParamError as exc:
                return _rejected(request, "params", str(exc))
        verdict = self.admission.consider(request.dag, dag.overlap if dag else None)
        if isinstance(verdict, Refuse):
            return _rejected(request, verdict.reason, verdict.message)
        assert dag is not None
        try:
            if request.scheduled_time is None:
                paths = claim_run_dir(runs_dir, dag.name, self.clock.now())
            elif (fired := claim_fire_dir(runs_dir, dag.name, request.scheduled_time)) is None:
                when = request.scheduled_time.isoformat()
                return _rejected(request, "duplicate", f"the fire at {when} has its run already")
            else:
                paths = fired
        except RunError as exc:
            return _rejected(request, "busy", str(exc))
        self._accepted[paths.run_id] = _Accepted(request=request, paths=paths, params=params)
        self._record_pending(request, dag, paths, params)
        self.metrics.started(dag.name)
        if request.scheduled_time is not None:
            lag = (self.clock.now() - request.scheduled_time).total_seconds()
            self.metrics.trigger_lag[dag.name] = max(lag, 0.0)
        start = self.admission.admit(paths.run_id, dag.name, dag.overlap)
        if start is None:
            log.info("%s %s: waits for its turn", dag.name, paths.run_id)
        else:
            self._start(start)
        if dag.overlap is Overlap.LATEST:
            for drop in self.admission.supersede(paths.run_id, dag.name):
                why = f"superseded by {paths.run_id} (overlap = latest)"
                self.nursery.start_soon(self._never_started, drop.run_id, why)
        return RunAccepted(run_id=paths.run_id)

    def ended(self, ended: RunEnded) -> None:
        self.metrics.ended(ended.record)
        self.index(ended.record)  # the executor's own index may have lost it with a crash
        accepted = self._accepted.pop(ended.run_id, None)
        if accepted is not None:
            _tell_ended(accepted.request, ended)
        for start in self.admission.ended(ended.run_id):
            self._start(start)

    async def stop(self) -> int:
        """No run is accepted any more and the waiting ones are recorded as cancelled; the
        number of runs still active."""
        for drop in self.admission.stop():
            await self._never_started(drop.run_id, "pit serve stopped before it started")
        return len(self.admission.active_runs())

    def cancel(self, *, kill: bool) -> None:
        """Stop the active runs: their tasks get their stop grace, or are killed."""
        for run_id in self.admission.active_runs():
            self.executor.cancel(run_id, kill=kill)

    def cancel_run(self, run_id: str, by: str) -> CancelAnswer:
        """Cancel one run: an active one is stopped (its tasks get their stop grace), a waiting
        one is recorded as cancelled and never starts."""
        if run_id in self.admission.active_runs():
            log.info("%s: cancelled by %s", run_id, by)
            self.executor.cancel(run_id, kill=False, by=by)
            return "cancelling"
        if run_id in self.admission.waiting_runs():
            for start in self.admission.ended(run_id):  # out of the queue now, not after the write
                self._start(start)
            self.nursery.start_soon(self._never_started, run_id, f"{CANCELLED} by {by}")
            return "cancelled"
        return "unknown"

    def _record_pending(
        self, request: RunRequested, dag: DagSpec, paths: RunPaths, params: Params
    ) -> None:
        """The accepted run's first record, `pending`, owned by this process: if pit serve
        dies before the run has ended, the next one finds it and settles it. On the event
        loop: one small file, written before the executor can write the run's next record."""
        record = RunRecord(
            run_id=paths.run_id,
            dag=dag.name,
            trigger=request.trigger,
            scheduled_time=request.scheduled_time,
            tasks=tuple(TaskRecord(name=task.name) for task in dag.tasks),
            owner=this_process(),
            rerun_of=request.rerun.of if request.rerun else None,
            params=param_values(params),
        )
        try:
            write_manifest(paths, record)
        except OSError as exc:  # a full disk: the run goes on; its own writer says more
            log.warning("%s: cannot write its first record: %s", paths.run_id, exc)
            return
        self.index(record)

    def _start(self, start: Start) -> None:
        accepted = self._accepted[start.run_id]
        plan = self.plan(accepted.request)
        if isinstance(plan, str):  # e.g. its DAG was removed by a reload while it waited
            self.nursery.start_soon(self._never_started, start.run_id, plan)
        elif accepted.request.rerun is not None:
            self.executor.execute(plan, accepted.paths)
        else:
            self.executor.execute(attrs.evolve(plan, params=accepted.params), accepted.paths)

    async def _never_started(self, run_id: str, why: str) -> None:
        """An accepted run that will not start still ends with a truthful run.json."""
        accepted = self._accepted.pop(run_id)
        request, paths = accepted.request, accepted.paths
        plan = self.plan(request)
        tasks = () if isinstance(plan, str) else tuple(t.name for t in plan.dag.tasks)
        log.info("%s %s: cancelled: %s", request.dag, run_id, why)
        record = never_started(paths, request.dag, request.trigger, tasks, why, self.clock.now())
        with contextlib.suppress(OSError):  # a full disk: the log line above is all there is
            await trio.to_thread.run_sync(write_manifest, paths, record)
        self.index(record)
        self.metrics.ended(record)
        _tell_ended(request, RunEnded(record=record))
        for start in self.admission.ended(run_id):
            self._start(start)


def _rejected(request: RunRequested, reason: RejectReason, message: str) -> RunRejected:
    log.info("%s: not started (%s trigger): %s", request.dag, request.trigger, message)
    return RunRejected(reason=reason, message=message)


def _tell_ended(request: RunRequested, ended: RunEnded) -> None:
    """Tell the requester how its run ended, if it asked (its channel is buffered)."""
    if request.ended is not None:
        # A requester that went away (a restarted trigger) must not bring pit down.
        with contextlib.suppress(
            trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError
        ):
            request.ended.send_nowait(ended)
