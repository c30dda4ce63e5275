"""Retention of whole runs: keep_runs, keep_days, archive_logs_after."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import pytest

from pit.messages.run import RunRecord
from pit.spec.retention import Retention
from pit.spec.states import RunState
from pit.store.retention import apply_retention_policy, read_log
from pit.store.rundir import RunPaths, format_run_id, make_run_folders, write_manifest

NOW = dt.datetime(2026, 12, 10, 12, tzinfo=dt.UTC)


def make_run(runs_dir: Path, dag: str, days_ago: float, state: RunState) -> RunPaths:
    at = NOW - dt.timedelta(days=days_ago)
    paths = RunPaths(root=runs_dir / format_run_id(at, dag))
    paths.root.mkdir(parents=True)
    make_run_folders(paths)
    ended = at if state.terminal else None
    record = RunRecord(
        run_id=paths.run_id, dag=dag, trigger="cron", state=state, started_at=at, ended_at=ended
    )
    write_manifest(paths, record)
    paths.log("work").write_bytes(b"line one\nline two\n")
    return paths


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, RunPaths]:
    runs_dir = tmp_path / "runs"
    made = {
        "old": make_run(runs_dir, "etl", 40, RunState.SUCCESS),
        "month": make_run(runs_dir, "etl", 20, RunState.FAILED),
        "week": make_run(runs_dir, "etl", 8, RunState.SUCCESS),
        "stuck": make_run(runs_dir, "etl", 50, RunState.RUNNING),
        "today": make_run(runs_dir, "etl", 0.1, RunState.SUCCESS),
        "other": make_run(runs_dir, "other", 60, RunState.SUCCESS),
    }
    return made


def kept(runs: dict[str, RunPaths]) -> set[str]:
    return {name for name, paths in runs.items() if paths.root.exists()}


def test_keep_runs_keeps_the_newest_ended_runs_of_the_dag(runs: dict[str, RunPaths]) -> None:
    runs_dir = runs["old"].root.parent
    pruned = apply_retention_policy(runs_dir, "etl", Retention(keep_runs=2), NOW)
    # A run not ended is never removed, nor another DAG's.
    assert kept(runs) == {"today", "week", "stuck", "other"}
    assert set(pruned.removed) == {runs["month"].run_id, runs["old"].run_id}


def test_keep_days_keeps_the_runs_that_ended_within_them(runs: dict[str, RunPaths]) -> None:
    runs_dir = runs["old"].root.parent
    apply_retention_policy(runs_dir, "etl", Retention(keep_days=30), NOW)
    assert kept(runs) == {"today", "week", "month", "stuck", "other"}


def test_old_logs_are_compressed_in_place_and_still_read(runs: dict[str, RunPaths]) -> None:
    runs_dir = runs["old"].root.parent
    pruned = apply_retention_policy(runs_dir, "etl", Retention(archive_logs_after=7 * 86400.0), NOW)
    assert pruned.archived == 3  # old, month, week; not today's, not the run still going
    week = runs["week"].log("work")
    assert not week.exists()
    assert gzip.decompress(week.with_name("work.log.gz").read_bytes()) == b"line one\nline two\n"
    assert read_log(week) == b"line one\nline two\n"
    assert read_log(runs["today"].log("work")) == b"line one\nline two\n"
    assert runs["stuck"].log("work").exists()
    again = apply_retention_policy(runs_dir, "etl", Retention(archive_logs_after=7 * 86400.0), NOW)
    assert again.archived == 0


def test_no_policy_touches_nothing(runs: dict[str, RunPaths]) -> None:
    runs_dir = runs["old"].root.parent
    assert apply_retention_policy(runs_dir, "etl", Retention(), NOW).removed == ()
    assert kept(runs) == set(runs)
