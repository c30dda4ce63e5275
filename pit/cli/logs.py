"""`pit logs dag[/task]`: the logs of a run (the latest unless --run-id), a list of runs, or -f."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from pit.actors.reconcile import settle_if_owner_died
from pit.cli.context import CliContext
from pit.clock import SystemClock
from pit.errors import LogsError
from pit.messages.run import RunRecord
from pit.spec.durations import format_duration
from pit.store.retention import log_exists, open_log
from pit.store.rundir import RunPaths, list_run_folders, read_manifest

if TYPE_CHECKING:
    import gzip

_FOLLOW_POLL = 0.25


def logs_command(
    cli: CliContext,
    *,
    target: str,
    list_runs: bool,
    run_id: str | None,
    follow: bool,
    as_json: bool,
    server: str | None = None,
) -> int:
    """`pit logs`: a run's task logs (the latest, or `run_id`), or the list of the DAG's runs;
    with `server`, those of a remote pit serve (`cli/remote.py`)."""
    if server is not None:
        if list_runs or run_id:
            raise LogsError("with --server, name the run (or the DAG) itself: no --list, --run-id")
        from pit.cli.remote import remote_logs

        return remote_logs(server, target, follow=follow)
    runs_dir = cli.workspace(projects=False).runs_dir
    dag, _, task = target.partition("/")
    if not dag or (not task and target.endswith("/")):
        raise LogsError(f"'{target}' names no DAG and task; use `pit logs dag` or `dag/task`")
    now = SystemClock().now()
    folders = [
        (p, r if r is None else settle_if_owner_died(p, r, now))
        for p, r in list_run_folders(runs_dir, dag)
    ]
    if list_runs:
        _print_list(folders[::-1], as_json)  # newest first
        return 0
    runs = [(p, r) for p, r in folders if r is not None]
    if not runs:
        raise LogsError(f"no runs of '{dag}' in {runs_dir}; start one with `pit run {dag}`")
    if run_id is None:
        paths, record = runs[-1]
    else:
        found = [(p, r) for p, r in runs if p.run_id == run_id]
        if not found:
            raise LogsError(f"no run '{run_id}' of '{dag}'; see `pit logs {dag} --list`")
        paths, record = found[0]
    names = [t.name for t in record.tasks]
    if task and task not in names:
        raise LogsError(f"run {paths.run_id} has no task '{task}' (its tasks: {', '.join(names)})")
    if not paths.logs.is_dir():
        raise LogsError(f"run {paths.run_id} kept no logs (keep_artifacts leaves them out)")
    chosen = [task] if task else names
    if follow:
        _follow(paths, chosen)
    else:
        _print_logs(paths, record, chosen)
    return 0


def _print_list(runs: list[tuple[RunPaths, RunRecord | None]], as_json: bool) -> None:
    """The runs as given (newest first); a folder without a readable run.json is `unknown`."""
    if as_json:
        print(
            json.dumps(
                [r.to_json() if r else {"run_id": p.run_id, "state": "unknown"} for p, r in runs],
                indent=2,
            )
        )
        return
    if not runs:
        print("no runs")
        return
    print(f"{'run id':<40} {'state':<10} {'trigger':<8} {'started':<20} {'code':<16} duration")
    for paths, record in runs:
        if record is None:
            print(f"{paths.run_id:<40} {'unknown':<10} {'-':<8} {'-':<20} {'-':<16} -")
            continue
        started = (
            f"{record.started_at.astimezone():%Y-%m-%d %H:%M:%S}" if record.started_at else "-"
        )
        took = "-"
        if record.started_at and record.ended_at:
            took = format_duration((record.ended_at - record.started_at).total_seconds())
        elif not record.state.terminal:
            took = "running"
        code = _short_code(record)
        print(
            f"{record.run_id:<40} {record.state.value:<10} {record.trigger:<8} {started:<20} "
            f"{code:<16} {took}"
        )


def _short_code(record: RunRecord) -> str:
    """The code a run ran, short: `git:<commit>` for a git-backed DAG, else the snapshot's
    digest (and `@<commit>` of the work tree the project is in)."""
    version = record.code_version
    if version is None:
        return "-"
    if version.startswith("git:"):
        return version[:14]
    short = version.removeprefix("sha256:")[:8]
    return f"{short}@{record.code_commit[:7]}" if record.code_commit else short


def _print_logs(paths: RunPaths, record: RunRecord, tasks: list[str]) -> None:
    out = sys.stdout.buffer
    states = {t.name: t for t in record.tasks}
    for name in tasks:
        if len(tasks) > 1:
            out.write(f"==> {name} ({states[name].state.value}) <==\n".encode())
        log = paths.log(name)
        if log_exists(log):
            with open_log(log) as file:  # plain, or archived (compressed) by retention
                _copy(file, out)
        elif len(tasks) > 1:
            out.write(b"(no output: the task did not start)\n")
        else:
            raise LogsError(f"task '{name}' of run {paths.run_id} has no log: it did not start")
    out.flush()


def _copy(source: BinaryIO | gzip.GzipFile, out: BinaryIO) -> None:
    while chunk := source.read(1 << 20):
        out.write(chunk)


def _follow(paths: RunPaths, tasks: list[str]) -> None:
    """Print what each log gains, prefixed with its task when several, until the run has ended."""
    offsets = dict.fromkeys(tasks, 0)
    out = sys.stdout.buffer
    clock = SystemClock()
    while True:
        record = read_manifest(paths.manifest)
        ended = settle_if_owner_died(paths, record, clock.now()).state.terminal
        for name in tasks:
            offsets[name] = _print_new(
                paths.log(name), offsets[name], name if len(tasks) > 1 else None, out
            )
        out.flush()
        if ended:
            return
        time.sleep(_FOLLOW_POLL)


def _print_new(log: Path, offset: int, prefix: str | None, out: BinaryIO) -> int:
    if not log.is_file():
        return offset
    with log.open("rb") as file:
        file.seek(offset)
        data = file.read()
    # Print whole lines only; a partial last line waits for its end (or the run's).
    cut = data.rfind(b"\n") + 1 if prefix else len(data)
    for line in data[:cut].splitlines(keepends=True):
        out.write(f"[{prefix}] ".encode() + line if prefix else line)
    return offset + cut
