"""Runs left `running` by a pit that died: found, their processes ended, their record settled.

The guard (`actors/guard.py`) settles a run within a second of its pit's death. When the guard
died too (a reboot, a kill of everything), the run's owner in run.json tells: a run whose owner
process is gone is over, whatever run.json still says. `pit serve` settles such runs at start
(`recover_runs`: the runs its store holds as not ended, and the run folders it does not hold),
and `pit logs` whenever it reads one.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING

from pit.messages.run import RunRecord
from pit.store.owner import INTERRUPTED, describe_death, owner_alive
from pit.store.rundir import RunPaths, list_runs, read_manifest, settle_dead_owner

if TYPE_CHECKING:  # `pit logs` settles runs through this module: it need not load SQLite
    from pit.store.runstore import RunStore


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


UNRECORDED_AGE = 60.0
"""Seconds after which a run folder with no run.json is taken for a run whose pit died before
its first record (a `pit run` starting now writes its record within milliseconds)."""


def recover_runs(runs_dir: Path, store: RunStore, at: dt.datetime) -> list[RunRecord]:
    """At pit serve's start, after a crash or not: index the run folders the store lacks (the
    last records before a crash may not have reached it), and settle every run not ended whose
    owner died, in run.json and in the store. Reads the run.json of those runs only, not of
    every run. Blocking. Returns the records settled."""
    try:
        folders = set(os.listdir(runs_dir))
    except FileNotFoundError:
        return []
    unindexed = folders - store.run_ids()
    settled, indexed = [], []
    for run_id in sorted(unindexed | set(store.open_runs())):
        paths = RunPaths(root=runs_dir / run_id)
        try:
            record = read_manifest(paths.manifest)
        except FileNotFoundError:
            if not _unrecorded_and_old(paths, at):
                continue
            found = settle_dead_owner(
                paths, f"{INTERRUPTED}: its pit died before its first record", at
            )
            if found is not None:
                settled.append(found)
                indexed.append(found)
            continue
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a run.json of ours (or damaged): left for `pit store rebuild`
        now = settle_if_owner_died(paths, record, at)
        if now is not record:
            settled.append(now)
        indexed.append(now)
    store.put(indexed)
    return settled


def _unrecorded_and_old(paths: RunPaths, at: dt.datetime) -> bool:
    try:
        made = paths.root.stat().st_mtime
    except OSError:
        return False
    return paths.root.is_dir() and at.timestamp() - made > UNRECORDED_AGE
