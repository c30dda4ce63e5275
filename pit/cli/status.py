"""`pit status`: every DAG at a glance, from the run store.

One line per DAG of the workspace: its schedule in words and next fire time (in its time
zone), its triggers, its last run (state, when, how long), its success rate over its last
`WINDOW` runs, and its runs active now.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pit.cli.context import CliContext
from pit.cli.store import indexed_store
from pit.clock import SystemClock, zone_of
from pit.spec.durations import format_duration
from pit.spec.load import DAG_FILE, PROJECTS_DIR, project_folders
from pit.spec.states import RunState, TaskState
from pit.store.owner import INTERRUPTED
from pit.store.paused import read_paused_or_warn
from pit.store.runstore import DagFacts, RunRow, RunStore

WINDOW = 20
"""Runs the success rate is taken over."""


def status_command(cli: CliContext, *, as_json: bool) -> int:
    """`pit status`: the exit code (0; 2, through PitError, for a workspace it cannot read)."""
    workspace = cli.workspace(projects=False)
    now = SystemClock().now()
    with indexed_store(workspace) as store:
        dags = _dag_facts(store, workspace.root)
        _settle_open_runs(store, workspace.runs_dir, now)
        active = store.active()
        rows = [
            _row(dag, store.recent(dag.name, WINDOW), active.get(dag.name, 0), now) for dag in dags
        ]
        pools = _pool_use(store, workspace.runs_dir, workspace.config.pools)
    paused = read_paused_or_warn(workspace.root, lambda why: print(f"pit: {why}", file=sys.stderr))
    for row in rows:
        pause = paused.get(row["dag"])
        row["paused"] = None if pause is None else {"at": pause.at.isoformat(), "by": pause.by}
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        _print_table(rows)
        for name, (running, size, queued) in pools.items():
            print(f"pool {name}: {running} of {size} slots in use, {queued} tasks queued")
    return 0


def _pool_use(
    store: RunStore, runs_dir: Path, sizes: Mapping[str, int]
) -> dict[str, tuple[int, int, int]]:
    """Pool -> (its tasks running, its slots, its tasks queued), from the active runs' records."""
    from pit.store.rundir import read_manifest

    use = {name: [0, size, 0] for name, size in sizes.items()}
    if not use:
        return {}
    for run_id in store.open_runs():
        try:
            tasks = read_manifest(runs_dir / run_id / "run.json").tasks
        except (OSError, ValueError, KeyError, TypeError):
            continue
        for task in tasks:
            if task.pool in use and task.state in (TaskState.RUNNING, TaskState.QUEUED):
                use[task.pool][0 if task.state is TaskState.RUNNING else 2] += 1
    return {name: (running, size, queued) for name, (running, size, queued) in use.items()}


def _settle_open_runs(store: RunStore, runs_dir: Path, now: dt.datetime) -> None:
    """The runs the store holds as not ended, as their run.json says, and settled as failed
    where the pit that ran them is gone (as `pit logs` does): "active" must mean active."""
    if not store.open_runs():
        return
    from pit.actors.reconcile import settle_if_owner_died  # with the run records: if needed
    from pit.store.rundir import RunPaths, read_manifest

    store.catch_up(runs_dir)
    settled = []
    for run_id in store.open_runs():
        paths = RunPaths(root=runs_dir / run_id)
        try:
            record = read_manifest(paths.manifest)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        after = settle_if_owner_died(paths, record, now)
        if after != record:
            settled.append(after)
    store.put(settled)


def _dag_facts(store: RunStore, root: Path) -> list[DagFacts]:
    """The DAG of each project as its pit.toml declares it, parsed again only where the file
    changed (the store keeps what was read, by the file's inode, mtime and size): with 100
    projects, reading every pit.toml would be most of what `pit status` costs."""
    cached = store.dag_facts()
    facts, fresh = [], []
    for folder in project_folders(root):
        try:
            stat = (folder / DAG_FILE).stat()
        except OSError:
            continue
        stamp = f"{stat.st_ino}:{stat.st_mtime_ns}:{stat.st_size}"
        known = cached.get(folder.name)
        if known is None or known.stamp != stamp:
            known = _read_facts(folder, stamp)
            if known is None:  # it does not parse: `pit validate` says why
                continue
            fresh.append(known)
        facts.append(known)
    if fresh or set(cached) - {f.folder for f in facts}:
        store.put_dag_facts(fresh, keep=[f.folder for f in facts])
    return facts


def _read_facts(folder: Path, stamp: str) -> DagFacts | None:
    from pit.spec.dag import parse_dag  # only for a pit.toml changed since it was last read

    try:
        data = (folder / DAG_FILE).read_bytes()
    except OSError:
        return None
    dag, _ = parse_dag(data, f"{PROJECTS_DIR}/{folder.name}/{DAG_FILE}")
    if dag is None:
        return None
    triggers = (("cron", dag.schedule), ("webhook", dag.webhook), ("ftp", dag.ftp_watch))
    return DagFacts(
        folder=folder.name,
        stamp=stamp,
        name=dag.name,
        schedule=dag.schedule,
        timezone=dag.timezone,
        triggers=tuple(name for name, present in triggers if present),
    )


def _row(dag: DagFacts, recent: list[RunRow], active: int, now: dt.datetime) -> dict[str, Any]:
    from pit.spec.cron import describe, next_fire  # croniter: only for a schedule pit cannot read

    row: dict[str, Any] = {
        "dag": dag.name,
        "schedule": dag.schedule,
        "schedule_in_words": describe(dag.schedule) if dag.schedule else None,
        "timezone": dag.timezone,
        "next_run": None,
        "triggers": list(dag.triggers),
        "last_run": None,
        "success_rate": None,
        "runs_counted": len(recent),
        "active_runs": active,
    }
    if dag.schedule:
        fire = next_fire(dag.schedule, now, zone_of(dag.timezone))
        row["next_run"] = fire.isoformat(timespec="minutes")
    if recent:
        last = recent[0]
        took = None
        if last.started_at and last.ended_at:
            took = (last.ended_at - last.started_at).total_seconds()
        row["last_run"] = {
            "run_id": last.run_id,
            "state": last.state.value,
            "started_at": last.started_at.isoformat() if last.started_at else None,
            "duration_seconds": took,
            "error": last.error,
            "interrupted": bool(last.error and last.error.startswith(INTERRUPTED)),
        }
        ended = [r for r in recent if r.state.terminal]
        if ended:
            row["success_rate"] = sum(r.state is RunState.SUCCESS for r in ended) / len(ended)
    return row


def _print_table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("no DAGs")
        return
    table = [["dag", "schedule", "next run", "triggers", "last run", "took", "success", "active"]]
    for row in rows:
        last = row["last_run"] or {}
        started = last.get("started_at")
        when = dt.datetime.fromisoformat(started).astimezone() if started else None
        took = last.get("duration_seconds")
        rate = row["success_rate"]
        table.append(
            [
                row["dag"],
                row["schedule_in_words"] or "-",
                "paused" if row["paused"] else _local(row["next_run"], row["timezone"]),
                ",".join(row["triggers"]) or "manual",
                _last_state(last, when),
                format_duration(took) if took is not None else "-",
                f"{rate:.0%} of {row['runs_counted']}" if rate is not None else "-",
                str(row["active_runs"]),
            ]
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )


def _last_state(last: dict[str, Any], when: dt.datetime | None) -> str:
    """`failed 2026-12-03 06:00`, and `(interrupted)` for a run a crash cut short."""
    state = str(last.get("state", "-"))
    if last.get("interrupted"):
        state += " (interrupted)"
    return f"{state} {when:%Y-%m-%d %H:%M}" if when else state


def _local(iso: str | None, zone: str | None) -> str:
    """A fire time as the DAG's zone has it, e.g. `2026-12-03 06:00 CET`."""
    if iso is None:
        return "-"
    at = dt.datetime.fromisoformat(iso).astimezone(zone_of(zone))
    return f"{at:%Y-%m-%d %H:%M} {at.tzname() or ''}".rstrip()
