"""Runs left `running` by a pit that died: found, their processes ended, their record settled.

The guard (`actors/guard.py`) settles a run within a second of its pit's death. When the guard
died too (a reboot, a kill of everything), the run's owner in run.json tells: a run whose owner
process is gone is over, whatever run.json still says. `pit serve` settles such runs at start,
and `pit logs` whenever it reads one.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pit.messages.run import RunRecord
from pit.store.owner import describe_death, owner_alive
from pit.store.rundir import RunPaths, list_runs, settle_dead_owner


def settle_if_owner_died(paths: RunPaths, record: RunRecord, at: dt.datetime) -> RunRecord:
    """`record` as it truly stands: settled as failed (and its processes killed) when it is not
    over but its owner is dead. Blocking (it may read /proc)."""
    if record.state.terminal or record.owner is None or owner_alive(record.owner) is not False:
        return record
    from pit.actors.process import kill_run_processes  # trio: only when there is work to do

    kill_run_processes({paths.run_id})  # the dead owner's tasks must not run on unseen
    return settle_dead_owner(paths, describe_death(record.owner), at) or record


def settle_dead_runs(runs_dir: Path, at: dt.datetime) -> list[RunRecord]:
    """Settle every run under `runs_dir` whose owner died; the records settled."""
    settled = []
    for paths, record in list_runs(runs_dir):
        now = settle_if_owner_died(paths, record, at)
        if now is not record:
            settled.append(now)
    return settled
