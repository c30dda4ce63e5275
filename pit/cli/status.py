"""`pit status`: every DAG at a glance, from the run store.

One line per DAG of the workspace: its schedule in words and next fire time (in its time
zone), its triggers, its last run (state, when, how long), its success rate over its last
`WINDOW` runs, and its runs active now.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from pit.actors.reconcile import settle_if_owner_died
from pit.cli.context import CliContext
from pit.clock import SystemClock, local_zone
from pit.spec.dag import DagSpec
from pit.spec.durations import format_duration
from pit.spec.states import RunState
from pit.store.rundir import RunPaths, read_manifest
from pit.store.runstore import RunRow, RunStore, rebuild, store_path

WINDOW = 20
"""Runs the success rate is taken over."""


def status_command(cli: CliContext, *, as_json: bool) -> int:
    """`pit status`: the exit code (0; 2, through PitError, for a workspace it cannot read)."""
    workspace = cli.workspace()
    dags = [p.dag for p in workspace.projects if p.dag is not None]
    path = store_path(workspace.root, workspace.config.metadata_db)
    if not path.exists():  # runs of a pit from before the store: index them once
        count = rebuild(path, workspace.runs_dir)
        print(f"pit: made the run store {path} ({count} runs)", file=sys.stderr)
    now = SystemClock().now()
    with RunStore.open(path) as store:
        _settle_open_runs(store, workspace.runs_dir, now)
        active = store.active()
        rows = [
            _row(dag, store.recent(dag.name, WINDOW), active.get(dag.name, 0), now) for dag in dags
        ]
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        _print_table(rows)
    return 0


def _settle_open_runs(store: RunStore, runs_dir: Path, now: dt.datetime) -> None:
    """The runs the store holds as not ended, as their run.json says, and settled as failed
    where the pit that ran them is gone (as `pit logs` does): "active" must mean active."""
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


def _row(dag: DagSpec, recent: list[RunRow], active: int, now: dt.datetime) -> dict[str, Any]:
    from pit.spec.cron import describe, next_fire  # croniter: only when a DAG has a schedule

    triggers = [
        name
        for name, present in (
            ("cron", dag.schedule),
            ("webhook", dag.webhook),
            ("ftp", dag.ftp_watch),
        )
        if present
    ]
    row: dict[str, Any] = {
        "dag": dag.name,
        "schedule": dag.schedule,
        "schedule_in_words": describe(dag.schedule) if dag.schedule else None,
        "timezone": dag.timezone,
        "next_run": None,
        "triggers": triggers,
        "last_run": None,
        "success_rate": None,
        "runs_counted": len(recent),
        "active_runs": active,
    }
    if dag.schedule:
        fire = next_fire(dag.schedule, now, _zone(dag.timezone))
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
        }
        ended = [r for r in recent if r.state.terminal]
        if ended:
            row["success_rate"] = sum(r.state is RunState.SUCCESS for r in ended) / len(ended)
    return row


def _zone(name: str | None) -> dt.tzinfo:
    if name is None:
        return local_zone()
    import zoneinfo

    return zoneinfo.ZoneInfo(name)


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
                _local(row["next_run"], row["timezone"]),
                ",".join(row["triggers"]) or "manual",
                f"{last['state']} {when:%Y-%m-%d %H:%M}" if when else last.get("state", "-"),
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


def _local(iso: str | None, zone: str | None) -> str:
    """A fire time as the DAG's zone has it, e.g. `2026-12-03 06:00 CET`."""
    if iso is None:
        return "-"
    at = dt.datetime.fromisoformat(iso).astimezone(_zone(zone))
    return f"{at:%Y-%m-%d %H:%M} {at.tzname() or ''}".rstrip()
