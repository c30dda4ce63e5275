"""Retention of whole runs: old runs of a DAG removed, old task logs compressed.

`keep_runs` keeps a DAG's newest N ended runs, `keep_days` its runs that ended within N days;
older ended runs lose their folder (and their row in the run store, which the caller drops).
`archive_logs_after` compresses the task logs of runs that ended longer ago than that, in place
(`logs/<task>.log` becomes `logs/<task>.log.gz`); `pit logs` and the API read either. A run
not ended, or whose run.json cannot be read, is never touched. Blocking: call from a worker
thread.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import attrs

from pit.messages.run import RunRecord
from pit.spec.retention import Retention

if TYPE_CHECKING:  # gzip is loaded by what compresses or reads an archived log only
    import gzip
from pit.store.rundir import RunPaths, list_run_folders

ARCHIVED = ".gz"
"""The suffix of a compressed task log (`<task>.log.gz`)."""


@attrs.frozen(kw_only=True)
class Pruned:
    removed: tuple[str, ...] = ()
    """The runs whose folders were removed."""
    archived: int = 0
    """Task logs compressed."""


def apply_retention_policy(runs_dir: Path, dag: str, policy: Retention, now: dt.datetime) -> Pruned:
    """Apply `policy` to the runs of `dag` under `runs_dir`."""
    if not policy.active:
        return Pruned()
    ended = [
        (paths, record)
        for paths, record in reversed(list_run_folders(runs_dir, dag))  # newest first
        if record is not None and record.state.terminal
    ]
    removed = []
    for position, (paths, record) in enumerate(ended):
        if _expired(position, record, policy, now):
            shutil.rmtree(paths.root, ignore_errors=True)
            removed.append(paths.run_id)
    archived = 0
    if policy.archive_logs_after is not None:
        cutoff = now - dt.timedelta(seconds=policy.archive_logs_after)
        for paths, record in ended:
            if paths.run_id not in removed and _ended_at(record) <= cutoff:
                archived += archive_logs(paths)
    return Pruned(removed=tuple(removed), archived=archived)


def _expired(position: int, record: RunRecord, policy: Retention, now: dt.datetime) -> bool:
    if policy.keep_runs is not None and position >= policy.keep_runs:
        return True
    if policy.keep_days is not None:
        return _ended_at(record) < now - dt.timedelta(days=policy.keep_days)
    return False


def _ended_at(record: RunRecord) -> dt.datetime:
    return record.ended_at or record.started_at or dt.datetime.max.replace(tzinfo=dt.UTC)


def archive_logs(paths: RunPaths) -> int:
    """Compress each task log of the run in place; how many."""
    try:
        logs = [entry for entry in os.scandir(paths.logs) if entry.name.endswith(".log")]
    except OSError:
        return 0
    for entry in logs:
        plain = Path(entry.path)
        packed = plain.with_name(plain.name + ARCHIVED)
        partial = plain.with_name(f".{packed.name}.partial")
        import gzip

        try:
            with open(plain, "rb") as source, gzip.open(partial, "wb", compresslevel=6) as sink:
                shutil.copyfileobj(source, sink, 1 << 20)  # a log may be large: streamed
            os.replace(partial, packed)
        finally:
            partial.unlink(missing_ok=True)
        plain.unlink()
    return len(logs)


def open_log(path: Path) -> BinaryIO | gzip.GzipFile:
    """A task log opened for reading, whether it is still plain (`<task>.log`) or archived
    (`<task>.log.gz`, read as it was written). Raises FileNotFoundError when it is neither."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        import gzip

        return gzip.open(path.with_name(path.name + ARCHIVED), "rb")


def log_exists(path: Path) -> bool:
    return path.is_file() or path.with_name(path.name + ARCHIVED).is_file()


def read_log(path: Path) -> bytes:
    """The whole of a task log, plain or archived (see `open_log`)."""
    with open_log(path) as log:
        return log.read()
