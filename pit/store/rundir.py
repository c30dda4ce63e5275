"""A run on disk: `runs/<run-id>/{project,logs,data}` and the `run.json` manifest.

Plain blocking file operations; actors call them through `trio.to_thread`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import shutil
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs

from pit.errors import RunError
from pit.messages.run import Attempt, RunOwner, RunPlan, RunRecord, TaskRecord
from pit.spec.durations import format_duration
from pit.spec.states import RunState, TaskState, cut_short
from pit.spec.tables import RequireSpec
from pit.store.files import write_atomically

MANIFEST = "run.json"
AUDIT_FILE = "secret_access.jsonl"
"""In a run's folder: one line per secret its tasks asked for (`pit.actors.broker`)."""
CANCEL_NOTE = ".cancelled-by"
"""In a run's folder: who asked for it to be cancelled (`pit cancel` writes it, then signals the
run's `pit run`, which names them in the run's error)."""
CRASH_LOG = "pit.log"
"""In a run's folder: the tracebacks of pit bugs met by the run (the console never shows them)."""
RESERVE = ".reserve"
"""Disk space held for the run's last run.json: freed when a write finds the disk full."""
RESERVE_BYTES = 64 * 1024
RESERVE_BYTES_PER_TASK = 512
SNAPSHOT_SKIP = (".venv", ".git", "__pycache__", "node_modules")
SMALL_ENTRIES = 64
SMALL_BYTES = 1 << 20
_ID_TIME_FORMAT = "%Y%m%d_%H%M%S"


@attrs.frozen(kw_only=True)
class RunPaths:
    root: Path

    @property
    def run_id(self) -> str:
        return self.root.name

    @property
    def project(self) -> Path:
        return self.root / "project"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    def log(self, task: str) -> Path:
        return self.logs / f"{task}.log"


def format_run_id(at: dt.datetime, dag: str) -> str:
    """`YYYYMMDD_HHMMSS.mmm_<dag>` in the machine's local time."""
    local = at.astimezone()
    return f"{local.strftime(_ID_TIME_FORMAT)}.{local.microsecond // 1000:03d}_{dag}"


def create_run_dir(runs_dir: Path, dag: str, at: dt.datetime) -> RunPaths:
    """Make a fresh `runs/<run-id>/` with empty logs/ and data/."""
    paths = claim_run_dir(runs_dir, dag, at)
    make_run_folders(paths)
    return paths


def claim_run_dir(runs_dir: Path, dag: str, at: dt.datetime) -> RunPaths:
    """Make a fresh, empty `runs/<run-id>/`: the run's id, taken (one system call, as `pit serve`
    makes one for every run it accepts). Two runs started in the same millisecond get ids one
    millisecond apart: ids stay unique, sortable and in the same format."""
    try:
        while True:
            root = runs_dir / format_run_id(at, dag)
            try:
                root.mkdir()
                return RunPaths(root=root)
            except FileExistsError:
                at += dt.timedelta(milliseconds=1)
            except FileNotFoundError:  # the first run of this workspace
                runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create a run folder under {runs_dir}: {exc}") from exc


def fire_run_id(fire: dt.datetime, dag: str) -> str:
    """The id of the run made for the DAG's fire at `fire`: that time's, `.000` milliseconds."""
    return format_run_id(fire.replace(microsecond=0), dag)


def claim_fire_dir(runs_dir: Path, dag: str, fire: dt.datetime) -> RunPaths | None:
    """Make `runs/<run-id>/` for the run of the DAG's fire at `fire`, its id that time's
    (`.000` milliseconds): None when it exists, so one fire is run once whoever asks again (a
    pit serve restarted within the minute, a catch-up, a backfill resumed)."""
    root = runs_dir / fire_run_id(fire, dag)
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        root.mkdir()
    except FileExistsError:
        try:
            taken = read_manifest(root / MANIFEST).scheduled_time
        except (OSError, ValueError, KeyError, TypeError):
            return None  # being made by another request for it: that one runs it
        if taken is not None and taken != fire:  # the same wall-clock time of another instant
            return claim_run_dir(runs_dir, dag, fire)  # (a repeated DST hour): its own id
        return None
    except OSError as exc:
        raise RunError(f"cannot create a run folder under {runs_dir}: {exc}") from exc
    return RunPaths(root=root)


def last_scheduled(runs_dir: Path, dag: str, *, look_at: int = 200) -> dt.datetime | None:
    """The latest fire time a run of `dag` was made for (cron, catch-up, backfill), from its
    newest `look_at` run folders; None when none was. Blocking: a few small reads."""
    newest = itertools.islice(_records_newest_first(runs_dir, dag), look_at)
    return max((r.scheduled_time for r in newest if r.scheduled_time is not None), default=None)


def unmet_requirement(
    runs_dir: Path, requires: Iterable[RequireSpec], now: dt.datetime
) -> str | None:
    """Why the DAGs `requires` names do not let a run start now (the first one found), or
    None: each has a success that ended within its `max_age` (without one: its latest ended run
    succeeded). Blocking: reads the newest run folders of each DAG until it knows."""
    for required in requires:
        latest, success = _latest_ends(runs_dir, required.dag)
        name = required.dag
        if required.max_age is None:
            if latest is None:
                return f"required DAG {name} has no ended run"
            if latest.state is not RunState.SUCCESS:
                return f"required DAG {name}'s last run {latest.run_id} {latest.state.value}"
            continue
        ended = success.ended_at if success is not None else None
        if ended is None or now - ended > dt.timedelta(seconds=required.max_age):
            last = f"its last at {ended.astimezone():%Y-%m-%d %H:%M}" if ended else "none yet"
            within = format_duration(required.max_age)
            return f"required DAG {name} has no success within {within} ({last})"
    return None


def after_is_due(runs_dir: Path, dag: str, after: Iterable[str]) -> bool:
    """`[dag.after]`: whether each DAG of `after` has a success that ended after `dag`'s last
    run started (any time, if it never ran). Blocking: reads the newest run folders."""
    records = list(itertools.islice(_records_newest_first(runs_dir, dag), 50))
    if any(not r.state.terminal and r.started_at is None for r in records):
        return False  # one of its runs is just starting
    starts = [r.started_at for r in records if r.started_at is not None]
    since = max(starts, default=None)  # run ids are fire times, not start order
    for name in after:
        _, success = _latest_ends(runs_dir, name)
        if success is None or success.ended_at is None:
            return False
        if since is not None and success.ended_at <= since:
            return False
    return True


def _records_newest_first(runs_dir: Path, dag: str) -> Iterator[RunRecord]:
    """The DAG's readable run records, newest run id first."""
    if not runs_dir.is_dir():
        return
    names = sorted((p.name for p in runs_dir.iterdir() if dag_of(p.name) == dag), reverse=True)
    for name in names:
        try:
            yield read_manifest(runs_dir / name / MANIFEST)
        except (OSError, ValueError, KeyError, TypeError):
            continue


def _latest_ends(runs_dir: Path, dag: str) -> tuple[RunRecord | None, RunRecord | None]:
    """The DAG's latest ended run, and its latest success, from its newest folders."""
    latest = None
    for record in _records_newest_first(runs_dir, dag):
        if not record.state.terminal:
            continue
        latest = latest or record
        if record.state is RunState.SUCCESS:
            return latest, record
    return latest, None


def make_run_folders(paths: RunPaths) -> None:
    """The run's logs/ and data/ (there already, or not)."""
    try:
        paths.logs.mkdir(exist_ok=True)
        paths.data.mkdir(exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create the folders of run {paths.root}: {exc}") from exc


def prepare_run(
    source: Path, paths: RunPaths, seed_files: tuple[Path, ...], *, config: Path | None = None
) -> str:
    """Everything a run needs on disk before its first task: its folders, the snapshot, the
    seed files. `config`, for a git-backed DAG, is its project's pit.toml, put in the snapshot
    of the clone. Returns the snapshot's `code_version`."""
    make_run_folders(paths)
    snapshot_project(source, paths)
    if config is not None:
        try:
            shutil.copy(config, paths.project / "pit.toml")
        except OSError as exc:
            raise RunError(f"cannot copy {config} into the run: {exc}") from exc
    seed_data(paths, seed_files)
    return code_version(paths.project)


def code_version(project: Path) -> str:
    """What code a run ran: a digest of its snapshot (every file's path and bytes, every
    link's target), the same for the same files wherever and whenever they are copied."""
    import hashlib  # only where a run starts: `pit logs` and `pit status` read run folders too

    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(project):
        dirs.sort()
        for name in sorted(files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, project).encode(errors="surrogateescape") + b"\0")
            if os.path.islink(path):
                digest.update(b"->" + os.readlink(path).encode(errors="surrogateescape"))
            else:
                with open(path, "rb") as file:
                    digest.update(hashlib.file_digest(file, "sha256").digest())
            digest.update(b"\0")
    return f"sha256:{digest.hexdigest()[:16]}"


def list_small_project(source: Path) -> list[os.DirEntry[str]] | None:
    """The entries of a project small enough to copy at once (at most `SMALL_ENTRIES` files,
    folders and links, `SMALL_BYTES` in all), parents before children; None for a bigger one.

    A handful of small files copies in well under a millisecond: less than handing the copy to a
    worker thread costs when many runs start at once. The walk stops at the first limit passed.
    """
    found: list[os.DirEntry[str]] = []
    size = 0
    folders = [str(source)]
    try:
        while folders:
            with os.scandir(folders.pop()) as entries:
                for entry in entries:
                    if entry.name in SNAPSHOT_SKIP:
                        continue
                    found.append(entry)
                    if entry.is_dir(follow_symlinks=False):
                        folders.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        size += entry.stat(follow_symlinks=False).st_size
                    if len(found) > SMALL_ENTRIES or size > SMALL_BYTES:
                        return None
    except OSError:
        return None  # let the full copy report it
    return found


def copy_small_project(source: Path, entries: list[os.DirEntry[str]], paths: RunPaths) -> None:
    """Copy what `list_small_project` listed, as `snapshot_project` would (modes and links)."""
    prefix = len(str(source)) + 1
    try:
        paths.project.mkdir()
        os.chmod(paths.project, stat.S_IMODE(source.stat().st_mode))  # exact, whatever the umask
        for entry in entries:
            target = paths.project / entry.path[prefix:]
            if entry.is_symlink():
                os.symlink(os.readlink(entry.path), target)
            elif entry.is_dir():
                target.mkdir()
                os.chmod(target, stat.S_IMODE(entry.stat().st_mode))
            else:
                shutil.copy(entry.path, target)
    except OSError as exc:
        raise RunError(f"cannot snapshot {source} into {paths.project}: {exc}") from exc


def snapshot_project(source: Path, paths: RunPaths) -> None:
    """Copy the project into the run (keeping modes and symlinks), skipping venvs and VCS data."""
    try:
        shutil.copytree(
            source,
            paths.project,
            symlinks=True,
            ignore=shutil.ignore_patterns(*SNAPSHOT_SKIP),
            copy_function=shutil.copy,  # content and mode; timestamps are not worth the syscalls
        )
    except (OSError, shutil.Error) as exc:
        raise RunError(f"cannot snapshot {source} into {paths.project}: {exc}") from exc


def write_manifest(paths: RunPaths, record: RunRecord) -> None:
    """Write run.json atomically: a reader sees the old file or the new one, never half of one."""
    # No indent: json's C encoder only serves compact output, and it is ~10x faster. Each
    # task's text is made once: a long run writes run.json many times, its tasks mostly alike.
    write_atomically(paths.manifest, record.json_text().encode())


def reserve_space(paths: RunPaths, tasks: int) -> None:
    """Hold enough disk for the run's final run.json (see `release_reserve`); best effort."""
    try:
        fd = os.open(paths.root / RESERVE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError:
        return
    try:
        os.posix_fallocate(fd, 0, RESERVE_BYTES + RESERVE_BYTES_PER_TASK * tasks)
    except OSError:
        pass  # a file system without fallocate, or full already: nothing held
    finally:
        os.close(fd)


def release_reserve(paths: RunPaths) -> bool:
    """Free the held space (the disk is full); True if there was some to free."""
    try:
        (paths.root / RESERVE).unlink()
    except OSError:
        return False
    return True


def settle_abandoned(paths: RunPaths, request: RunPlan, error: str, at: dt.datetime) -> RunRecord:
    """Record the end of a run whose executor died under it: the run failed with `error`, its
    running tasks failed, the ones not started skipped, the rest as they ended."""
    planned = RunRecord(
        run_id=paths.run_id,
        dag=request.dag.name,
        trigger=request.trigger,
        scheduled_time=request.scheduled_time,
        state=RunState.RUNNING,
        started_at=at,
        tasks=tuple(TaskRecord(name=task.name) for task in request.dag.tasks),
    )
    try:
        record = read_manifest(paths.manifest)
    except (OSError, ValueError, KeyError):  # it died before the run's first write
        record = planned
    if not record.tasks:  # the guard's record of a run that died before its first write
        record = attrs.evolve(planned, started_at=record.started_at or at)
    settled = settle_record(record, error, at)
    write_manifest(paths, settled)
    return settled


def never_started(
    paths: RunPaths,
    dag: str,
    trigger: str,
    tasks: tuple[str, ...],
    error: str,
    at: dt.datetime,
) -> RunRecord:
    """The record of an accepted run that will never start: cancelled, every task skipped."""
    skipped = tuple(TaskRecord(name=name, state=TaskState.SKIPPED, error=error) for name in tasks)
    return RunRecord(
        run_id=paths.run_id,
        dag=dag,
        trigger=trigger,
        state=RunState.CANCELLED,
        ended_at=at,
        error=error,
        tasks=skipped,
    )


def settle_dead_owner(paths: RunPaths, error: str, at: dt.datetime) -> RunRecord | None:
    """Settle the run.json of a run whose owner died, from what it says; None when it had
    ended already. A run that died before its first write gets a record of its own."""
    try:
        record = read_manifest(paths.manifest)
    except FileNotFoundError:
        if not paths.root.is_dir():
            return None
        record = RunRecord(
            run_id=paths.run_id, dag=dag_of(paths.run_id), trigger="unknown", started_at=at
        )
    except (OSError, ValueError, KeyError):
        return None  # not a run.json of ours: leave it as it is
    if record.state.terminal:
        return None
    settled = settle_record(record, error, at)
    write_manifest(paths, settled)
    return settled


def settle_record(record: RunRecord, error: str, at: dt.datetime) -> RunRecord:
    """`record` ended as failed with `error` (its pit died, a bug ended it): the tasks it had
    not finished are cut short (`cut_short`) with that error."""
    tasks = tuple(
        task
        if task.state.terminal
        else attrs.evolve(
            task, state=cut_short(task.state, task.attempts), ended_at=at, error=error
        )
        for task in record.tasks
    )
    return attrs.evolve(record, state=RunState.FAILED, ended_at=at, error=error, tasks=tasks)


def dag_of(run_id: str) -> str:
    """The DAG a run id names (`YYYYMMDD_HHMMSS.mmm_<dag>`)."""
    return run_id.split("_", 2)[-1]


def read_manifest(path: Path) -> RunRecord:
    return record_from_json(json.loads(path.read_text(encoding="utf-8")))


def record_from_json(raw: dict[str, Any]) -> RunRecord:
    """The record `RunRecord.to_json` gave (a run.json, a row of the run store)."""
    return RunRecord(
        run_id=raw["run_id"],
        dag=raw["dag"],
        trigger=raw["trigger"],
        scheduled_time=_time(raw.get("scheduled_time")),
        state=RunState(raw["state"]),
        started_at=_time(raw["started_at"]),
        ended_at=_time(raw["ended_at"]),
        error=raw.get("error"),
        tasks=tuple(_task(t) for t in raw["tasks"]),
        owner=_owner(raw.get("owner")),
        rerun_of=raw.get("rerun_of"),
        code_version=raw.get("code_version"),
        code_commit=raw.get("code_commit"),
        code_note=raw.get("code_note"),
        params=raw.get("params") or {},
    )


def _task(raw: dict[str, Any]) -> TaskRecord:
    return TaskRecord(
        name=raw["name"],
        state=TaskState(raw["state"]),
        attempts=raw["attempts"],
        exit_code=raw["exit_code"],
        started_at=_time(raw["started_at"]),
        ended_at=_time(raw["ended_at"]),
        error=raw["error"],
        reused_from=raw.get("reused_from"),
        history=tuple(
            Attempt(
                number=attempt["number"],
                started_at=_time(attempt["started_at"]),
                ended_at=_time(attempt["ended_at"]),
                exit_code=attempt["exit_code"],
                error=attempt["error"],
                worker=attempt.get("worker"),
            )
            for attempt in raw.get("history", ())
        ),
        pool=raw.get("pool"),
        hook=raw.get("hook"),
        worker=raw.get("worker"),
    )


def _owner(raw: Any) -> RunOwner | None:
    try:
        return RunOwner(
            host=str(raw["host"]),
            pid=int(raw["pid"]),
            boot_id=str(raw["boot_id"]),
            started=int(raw["started"]),
        )
    except (TypeError, KeyError, ValueError):  # none (an older run.json), or not ours
        return None


def _time(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def list_runs(runs_dir: Path, dag: str | None = None) -> list[tuple[RunPaths, RunRecord]]:
    """Runs with a readable manifest, oldest first (run ids sort by start time)."""
    return [(paths, record) for paths, record in list_run_folders(runs_dir, dag) if record]


def list_run_folders(
    runs_dir: Path, dag: str | None = None
) -> list[tuple[RunPaths, RunRecord | None]]:
    """Every run folder (of `dag`), oldest first, with its record; None for a folder whose
    run.json is missing or unreadable (a run from before run.json, one that crashed at once)."""
    if not runs_dir.is_dir():
        return []
    suffix = f"_{dag}" if dag else ""
    runs: list[tuple[RunPaths, RunRecord | None]] = []
    for root in sorted(runs_dir.iterdir()):
        if not root.name.endswith(suffix) or not root.is_dir():
            continue
        try:
            record: RunRecord | None = read_manifest(root / MANIFEST)
        except (OSError, ValueError, KeyError, TypeError):
            record = None
        named = record.dag if record is not None else dag_of(root.name)
        if dag is None or named == dag:
            runs.append((RunPaths(root=root), record))
    return runs


def apply_retention(paths: RunPaths, keep: tuple[str, ...]) -> None:
    """Remove the run's artifact folders not in `keep`; run.json always stays."""
    for name, folder in (("project", paths.project), ("logs", paths.logs), ("data", paths.data)):
        if name not in keep:
            shutil.rmtree(folder, ignore_errors=True)


def seed_data(paths: RunPaths, files: tuple[Path, ...]) -> None:
    """Copy the files that started a run (an FTP drop) into its data/, or the folders of a
    re-run's data/ (what the run re-run left)."""
    try:
        for file in files:
            if file.is_dir():
                shutil.copytree(file, paths.data / file.name, symlinks=True)
            else:
                shutil.copyfile(file, paths.data / file.name)
    except OSError as exc:
        raise RunError(f"cannot copy {file} into {paths.data}: {exc}") from exc


def read_audit(paths: RunPaths) -> list[dict[str, Any]]:
    """The run's secret accesses and refusals, as its audit file holds them; none when it
    asked for no secret."""
    return read_jsonl(paths.root / AUDIT_FILE)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The objects of a file of JSON lines (a damaged line is skipped); none without the file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def cancel_note(paths: RunPaths) -> str | None:
    """Who `pit cancel` said is cancelling the run, if it did."""
    try:
        return (paths.root / CANCEL_NOTE).read_text(encoding="utf-8", errors="replace")[:200]
    except OSError:
        return None
