"""The run store: an SQLite index of every run of a workspace, for `pit status` and the API.

Each run's `run.json` stays the record of the run and the source of truth; the store indexes
them so that "what ran last night, what failed, what runs now" is a query, not a walk over
folders. `rebuild` recreates it from the run folders exactly. It needs no server: one file
(`<workspace>/.pit/pit.db`, or `metadata_db` in pit_config.toml) in WAL mode, so readers on
their own connections never wait for the one writer of a process (`actors/store.py`).

Blocking (sqlite3): the actors call it from a worker thread.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from pit.errors import PitError
from pit.spec.states import RunState, TaskState

if TYPE_CHECKING:  # the run records: imported where records are read, not by `pit status`
    from pit.messages.run import RunRecord, TaskRecord

STORE_FILE = ".pit/pit.db"
"""Where the store is, under the workspace, unless `metadata_db` says otherwise."""

_MIGRATIONS = (
    # 1: runs and their tasks, each field as run.json has it (times as ISO 8601 text).
    """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        dag TEXT NOT NULL,
        trigger TEXT NOT NULL,
        scheduled_time TEXT,
        state TEXT NOT NULL,
        started_at TEXT,
        ended_at TEXT,
        error TEXT,
        owner TEXT
    ) WITHOUT ROWID;
    CREATE INDEX runs_of_dag ON runs (dag, run_id);
    CREATE INDEX runs_in_state ON runs (state, run_id);
    CREATE TABLE tasks (
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        name TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        exit_code INTEGER,
        started_at TEXT,
        ended_at TEXT,
        error TEXT,
        PRIMARY KEY (run_id, position)
    ) WITHOUT ROWID;
    """,
    # 2: what `pit status` shows of each project's pit.toml, with the file's identity.
    """
    CREATE TABLE dag_files (
        folder TEXT PRIMARY KEY,
        stamp TEXT NOT NULL,
        name TEXT NOT NULL,
        schedule TEXT,
        timezone TEXT,
        triggers TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 3: re-runs: the run re-run, and the tasks reused from it.
    """
    ALTER TABLE runs ADD COLUMN rerun_of TEXT;
    ALTER TABLE tasks ADD COLUMN reused_from TEXT;
    """,
    # 4: every attempt of every task, and the secret accesses of the runs (their audit file).
    """
    CREATE TABLE attempts (
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        task TEXT NOT NULL,
        number INTEGER NOT NULL,
        state TEXT NOT NULL,
        exit_code INTEGER,
        started_at TEXT,
        ended_at TEXT,
        error TEXT,
        PRIMARY KEY (run_id, task, number)
    ) WITHOUT ROWID;
    CREATE INDEX attempts_in_state ON attempts (state, started_at);
    CREATE TABLE secret_access (
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        line INTEGER NOT NULL,
        at TEXT,
        task TEXT,
        verified INTEGER,
        method TEXT,
        secret TEXT,
        claimed_task TEXT,
        PRIMARY KEY (run_id, line)
    ) WITHOUT ROWID;
    CREATE INDEX secret_access_by_secret ON secret_access (secret, at);
    """,
    # 5: what code each run ran (a digest of its snapshot).
    """
    ALTER TABLE runs ADD COLUMN code_version TEXT;
    """,
    # 6: refused requests beside accesses, and the changes `pit secrets` makes.
    """
    ALTER TABLE secret_access ADD COLUMN outcome TEXT;
    ALTER TABLE secret_access ADD COLUMN reason TEXT;
    ALTER TABLE secret_access ADD COLUMN found_by TEXT;
    CREATE TABLE secret_changes (
        line INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        event TEXT NOT NULL,
        project TEXT NOT NULL,
        secret TEXT NOT NULL,
        by TEXT
    );
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)
_BUSY_TIMEOUT = 10.0
"""Seconds a connection waits for another's write to end before it gives up."""
_OPEN = tuple(state.value for state in RunState if not state.terminal)
"""The states of a run not ended, as stored."""
_OPEN_MARKS = ", ".join("?" * len(_OPEN))
_RUN_FIELDS = (
    *("run_id", "dag", "trigger", "scheduled_time", "state"),
    *("started_at", "ended_at", "error", "owner", "rerun_of", "code_version"),
)
_TASK_FIELDS = (
    *("name", "state", "attempts", "exit_code", "started_at", "ended_at", "error"),
    "reused_from",
)


@attrs.frozen(kw_only=True)
class RunRow:
    """A run as a listing shows it: no tasks."""

    run_id: str
    state: RunState
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    error: str | None = None


@attrs.frozen(kw_only=True)
class DagFacts:
    """What `pit status` shows of a project's DAG, kept in the store with its pit.toml's
    identity (`stamp`: inode, mtime, size), so that a file unchanged is not parsed again."""

    folder: str
    stamp: str
    name: str
    schedule: str | None
    timezone: str | None
    triggers: tuple[str, ...]
    """Of "cron", "webhook", "ftp"."""


@attrs.frozen
class Changes:
    """A run's record of which only the tasks at `tasks` (positions) changed since the store
    last took it: the writer of a 1,000-task run updates a handful of rows, not 1,000."""

    record: RunRecord
    tasks: frozenset[int]


class StoreError(PitError):
    """The store cannot be used: written by a newer pit, damaged, or unreachable."""


@attrs.frozen
class SecretEvent:
    """A secret accessed or refused (by a run's task) or created, updated or deleted (by
    `pit secrets`), as the store holds it."""

    at: str
    event: str
    secret: str
    project: str
    """The DAG of the run that asked, or the section `pit secrets` changed."""
    task: str | None
    run_id: str | None
    by: str | None
    """Who made a change."""
    reason: str | None
    """Why a request was refused."""
    found_by: str | None = None
    """How the broker knew the asking task: its process group, or (an adopted process) its
    marker."""

    def to_json(self) -> dict[str, str | None]:
        return attrs.asdict(self)


class RunStore:
    """One connection to the store, used by one caller at a time (from any thread); each
    reader opens its own."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path

    @classmethod
    def open(cls, path: Path) -> RunStore:
        """Open the store at `path`, creating it or bringing its schema up to date."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Any thread may use it, one at a time: trio.to_thread picks a worker per call.
            connection = sqlite3.connect(
                path, isolation_level=None, timeout=_BUSY_TIMEOUT, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the run store {path}: {exc}") from exc
        try:
            _migrate(connection, path)
        except BaseException:
            connection.close()
            raise
        return cls(connection, path)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- writing ---------------------------------------------------------------------------

    def put(self, records: Iterable[RunRecord | Changes]) -> None:
        """Index these records, in one transaction: a whole record replaces what was held of
        its run; `Changes` update the run and only the tasks named. A record behind the one
        held (pending after running, running after the end: two writers, pit serve's and its
        executor's, may commit in either order) changes nothing."""
        with self._transaction():
            for item in records:
                record = item.record if isinstance(item, Changes) else item
                if self._behind(record):
                    continue
                if isinstance(item, Changes):
                    self._put_run(item.record)
                    self._put_tasks(item.record, item.tasks)
                else:
                    self._put_run(item)
                    self._db.execute("DELETE FROM tasks WHERE run_id = ?", (item.run_id,))
                    self._db.execute("DELETE FROM attempts WHERE run_id = ?", (item.run_id,))
                    self._put_tasks(item, range(len(item.tasks)))

    def forget(self, run_ids: Iterable[str]) -> None:
        """Drop these runs (their folders are gone: retention)."""
        with self._transaction():
            self._db.executemany("DELETE FROM runs WHERE run_id = ?", [(r,) for r in run_ids])

    def _behind(self, record: RunRecord) -> bool:
        held = self._db.execute(
            "SELECT state FROM runs WHERE run_id = ?", (record.run_id,)
        ).fetchone()
        return held is not None and _progress(RunState(held[0])) > _progress(record.state)

    def _put_run(self, record: RunRecord) -> None:
        owner = json.dumps(record.owner.to_json()) if record.owner else None
        self._db.execute(
            # An upsert: a REPLACE would delete the row, and its tasks with it (ON DELETE CASCADE).
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (run_id) DO UPDATE SET dag = excluded.dag, trigger = excluded.trigger, "
            "scheduled_time = excluded.scheduled_time, state = excluded.state, "
            "started_at = excluded.started_at, ended_at = excluded.ended_at, "
            "error = excluded.error, owner = excluded.owner, rerun_of = excluded.rerun_of, "
            "code_version = excluded.code_version",
            (
                record.run_id,
                record.dag,
                record.trigger,
                _iso(record.scheduled_time),
                record.state.value,
                _iso(record.started_at),
                _iso(record.ended_at),
                record.error,
                owner,
                record.rerun_of,
                record.code_version,
            ),
        )

    def _put_tasks(self, record: RunRecord, changed_positions: Iterable[int]) -> None:
        positions = list(changed_positions)
        rows = []
        for position in positions:
            task = record.tasks[position].to_json()
            rows.append(
                (
                    record.run_id,
                    position,
                    task["name"],
                    task["state"],
                    task["attempts"],
                    task["exit_code"],
                    task["started_at"],
                    task["ended_at"],
                    task["error"],
                    task["reused_from"],
                )
            )
        self._db.executemany(
            "INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
        )
        for position in positions:
            changed = record.tasks[position]
            self._db.execute(
                "DELETE FROM attempts WHERE run_id = ? AND task = ?", (record.run_id, changed.name)
            )
            self._db.executemany(
                "INSERT INTO attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(record.run_id, changed.name, *row) for row in _attempt_rows(changed)],
            )

    def put_audit(self, run_id: str, entries: Iterable[dict[str, object]]) -> None:
        """The secret accesses of a run, as its audit file holds them (replacing any held)."""
        with self._transaction():
            if self._db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
                self._db.execute("DELETE FROM secret_access WHERE run_id = ?", (run_id,))
                self._db.executemany(
                    "INSERT INTO secret_access VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            run_id,
                            line,
                            entry.get("at"),
                            entry.get("task"),
                            # Before pit found every asker: whether it was found, not claimed.
                            entry.get("verified", entry.get("found_by") is not None),
                            entry.get("method"),
                            entry.get("secret"),
                            entry.get("claimed_task"),
                            entry.get("outcome", "accessed"),
                            entry.get("reason"),
                            entry.get("found_by"),
                        )
                        for line, entry in enumerate(entries)
                    ],
                )

    def put_secret_changes(self, entries: Iterable[dict[str, object]]) -> None:
        """The changes `pit secrets` made, as the workspace's log holds them (replacing any
        held: the log is short, and read whole)."""
        rows = [
            (line, e.get("at"), e.get("event"), e.get("project"), e.get("secret"), e.get("by"))
            for line, e in enumerate(entries)
        ]
        with self._transaction():
            self._db.execute("DELETE FROM secret_changes")
            self._db.executemany(
                "INSERT INTO secret_changes VALUES (?, ?, ?, ?, ?, ?)",
                [row for row in rows if None not in row[1:5]],
            )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- reading ---------------------------------------------------------------------------

    def secret_events(self, secret: str | None = None, limit: int = 50) -> list[SecretEvent]:
        """The latest accesses, refusals and changes of secrets (of `secret` only, its fields'
        accesses included, when given), newest first."""
        where_access = where_change = ""
        params: list[object] = []
        if secret is not None:
            where_access = "WHERE a.secret = ? OR substr(a.secret, 1, ?) = ?"
            where_change = "WHERE c.secret = ?"
            params = [secret, len(secret) + 1, secret + ".", secret]
        rows = self._db.execute(
            f"""
            SELECT a.at, COALESCE(a.outcome, 'accessed'), a.secret, r.dag, a.task, a.run_id,
                   NULL, a.reason, a.found_by, a.line
            FROM secret_access AS a JOIN runs AS r USING (run_id) {where_access}
            UNION ALL
            SELECT c.at, c.event, c.secret, c.project, NULL, NULL, c.by, NULL, NULL, c.line
            FROM secret_changes AS c {where_change}
            ORDER BY 1 DESC, 10 DESC LIMIT ?
            """,
            [*params, limit],
        )
        return [SecretEvent(*row[:-1]) for row in rows]  # the line: only the order of a tie

    def get(self, run_id: str) -> RunRecord | None:
        found = self._records("SELECT * FROM runs WHERE run_id = ?", [run_id])
        return found[0] if found else None

    def runs(
        self,
        *,
        dag: str | None = None,
        state: RunState | None = None,
        before: str | None = None,
        limit: int = 50,
        tasks: bool = True,
    ) -> list[RunRecord]:
        """The newest runs first (of `dag`, in `state`, older than the run id `before`), with
        their tasks unless `tasks` is false."""
        where, params = [], list[object]()
        for clause, value in (
            ("dag = ?", dag),
            ("state = ?", state.value if state else None),
            ("run_id < ?", before),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = "SELECT * FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self._records(f"{sql} ORDER BY run_id DESC LIMIT ?", [*params, limit], tasks)

    def _records(self, sql: str, params: list[object], with_tasks: bool = True) -> list[RunRecord]:
        """The runs a query of `runs` finds, in its order, each with its tasks (or none)."""
        from pit.store.rundir import record_from_json

        runs = self._db.execute(sql, params).fetchall()
        tasks: dict[str, list[dict[str, object]]] = {run[0]: [] for run in runs}
        if runs and with_tasks:
            marks = ", ".join("?" * len(runs))
            for row in self._db.execute(
                f"SELECT * FROM tasks WHERE run_id IN ({marks}) ORDER BY run_id, position",
                [run[0] for run in runs],
            ):
                tasks[row[0]].append(dict(zip(_TASK_FIELDS, row[2:], strict=True)))
            self._attach_histories(tasks, marks, [run[0] for run in runs])
        return [
            record_from_json(
                {
                    **dict(zip(_RUN_FIELDS, run, strict=True)),
                    "owner": json.loads(run[8]) if run[8] else None,
                    "tasks": tasks[run[0]],
                }
            )
            for run in runs
        ]

    def _attach_histories(
        self, tasks: dict[str, list[dict[str, object]]], marks: str, run_ids: list[str]
    ) -> None:
        """The attempts of the tasks tried more than once, as their `history` (a task with
        one row of attempts has none: that row is the task itself)."""
        retried = {
            (run_id, str(task["name"])): task
            for run_id, run_tasks in tasks.items()
            for task in run_tasks
            if isinstance(task["attempts"], int) and task["attempts"] > 1
        }
        if not retried:
            return
        found: dict[tuple[str, str], list[dict[str, object]]] = {}
        for run_id, name, number, _, exit_code, started, ended, error in self._db.execute(
            f"SELECT * FROM attempts WHERE run_id IN ({marks}) ORDER BY run_id, task, number",
            run_ids,
        ):
            if (run_id, name) in retried:
                found.setdefault((run_id, name), []).append(
                    {
                        "number": number,
                        "started_at": started,
                        "ended_at": ended,
                        "exit_code": exit_code,
                        "error": error,
                    }
                )
        for key, history in found.items():
            if len(history) > 1:
                retried[key]["history"] = history

    def recent(self, dag: str, limit: int) -> list[RunRow]:
        """The DAG's last `limit` runs, newest first, without their tasks (one indexed read)."""
        rows = self._db.execute(
            "SELECT run_id, state, started_at, ended_at, error FROM runs WHERE dag = ? "
            "ORDER BY run_id DESC LIMIT ?",
            (dag, limit),
        )
        return [
            RunRow(
                run_id=run_id,
                state=RunState(state),
                started_at=dt.datetime.fromisoformat(started) if started else None,
                ended_at=dt.datetime.fromisoformat(ended) if ended else None,
                error=error,
            )
            for run_id, state, started, ended, error in rows
        ]

    def active(self) -> dict[str, int]:
        """DAG -> how many of its runs are not ended."""
        rows = self._db.execute(
            f"SELECT dag, count(*) FROM runs WHERE state IN ({_OPEN_MARKS}) GROUP BY dag", _OPEN
        )
        return dict(rows.fetchall())

    def run_ids(self) -> set[str]:
        """The id of every run held."""
        return {run_id for (run_id,) in self._db.execute("SELECT run_id FROM runs")}

    def open_runs(self) -> list[str]:
        """The ids of the runs not ended (by the state index: a handful among many)."""
        rows = self._db.execute(f"SELECT run_id FROM runs WHERE state IN ({_OPEN_MARKS})", _OPEN)
        return [run_id for (run_id,) in rows]

    def dag_facts(self) -> dict[str, DagFacts]:
        """Project folder -> the facts last read of its DAG."""
        rows = self._db.execute("SELECT * FROM dag_files")
        return {
            folder: DagFacts(
                folder=folder,
                stamp=stamp,
                name=name,
                schedule=schedule,
                timezone=timezone,
                triggers=tuple(json.loads(triggers)),
            )
            for folder, stamp, name, schedule, timezone, triggers in rows
        }

    def put_dag_facts(self, facts: Iterable[DagFacts], *, keep: Iterable[str]) -> None:
        """Remember `facts`, and forget the folders not in `keep` (projects removed)."""
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO dag_files VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (f.folder, f.stamp, f.name, f.schedule, f.timezone, json.dumps(f.triggers))
                    for f in facts
                ],
            )
            kept = list(keep)
            marks = ", ".join("?" * len(kept))
            self._db.execute(f"DELETE FROM dag_files WHERE folder NOT IN ({marks})", kept)

    def catch_up(self, runs_dir: Path) -> int:
        """Take again the runs held as not ended whose run.json was written since by another
        way (settled after its pit died, a run that never started, an executor lost): their
        run.json is the record; one whose folder is gone is dropped. Returns how many changed.
        Called when a writer opens the store, so the next pit to start corrects what the last
        could not."""
        open_runs = self.open_runs()
        if not open_runs:
            return 0
        from pit.store.rundir import read_manifest

        changed: list[RunRecord] = []
        gone: list[str] = []
        for run_id in open_runs:
            manifest = runs_dir / run_id / "run.json"
            try:
                on_disk = read_manifest(manifest)
            except FileNotFoundError:
                if not manifest.parent.exists():
                    gone.append(run_id)
                continue
            except (OSError, ValueError, KeyError, TypeError):
                continue  # unreadable now: left as it is for `pit store rebuild`
            if on_disk != self.get(run_id):
                changed.append(on_disk)
        with self._transaction():
            self._db.executemany("DELETE FROM runs WHERE run_id = ?", [(r,) for r in gone])
        self.put(changed)
        self.index_audits(runs_dir, [r.run_id for r in changed if r.state.terminal])
        return len(changed) + len(gone)

    def index_audits(self, runs_dir: Path, run_ids: Iterable[str]) -> None:
        """Take the secret accesses of these ended runs from their audit files."""
        from pit.store.rundir import RunPaths, read_audit

        for run_id in run_ids:
            if audit := read_audit(RunPaths(root=runs_dir / run_id)):
                self.put_audit(run_id, audit)

    def dump(self) -> list[tuple[object, ...]]:
        """Every row of every table, in order: two stores hold the same when their dumps are
        equal (`pit store rebuild` against the live store)."""
        rows: list[tuple[object, ...]] = []
        for table in ("runs", "tasks", "attempts", "secret_access", "secret_changes"):
            found = self._db.execute(f"SELECT * FROM {table} ORDER BY 1, 2")
            rows += [(table, *row) for row in found]
        return rows

    def checkpoint(self) -> None:
        """Move the write-ahead log into the store file, and empty it."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _attempt_rows(task: TaskRecord) -> list[tuple[object, ...]]:
    """The attempts of a task as rows (number, state, exit code, times, error): its history
    when it was tried again, else its one attempt (none if it never started)."""
    if task.history:
        last = len(task.history) - 1
        return [
            (
                attempt.number,
                task.state.value if i == last else TaskState.FAILED.value,
                attempt.exit_code,
                _iso(attempt.started_at),
                _iso(attempt.ended_at),
                attempt.error,
            )
            for i, attempt in enumerate(task.history)
        ]
    if task.attempts == 0 or task.reused_from is not None:
        return []
    return [
        (
            task.attempts,
            task.state.value,
            task.exit_code,
            _iso(task.started_at),
            _iso(task.ended_at),
            task.error,
        )
    ]


def _iso(at: dt.datetime | None) -> str | None:
    return at.isoformat(timespec="milliseconds") if at else None


def _progress(state: RunState) -> int:
    """How far along a run in `state` is: pending, running, ended."""
    if state.terminal:
        return 2
    return 1 if state is RunState.RUNNING else 0


def store_path(workspace: Path, configured: str | None) -> Path:
    """The store of a workspace: `metadata_db` of pit_config.toml (relative to the workspace),
    else `.pit/pit.db`."""
    return workspace / (configured or STORE_FILE)


def rebuild(path: Path, runs_dir: Path, workspace: Path) -> int:
    """Recreate the store at `path` from the run folders (every readable run.json) and the
    workspace's log of secret changes; returns the number of runs indexed. Built beside it
    and moved into place, so a reader sees the old store or the new one, and a store of a
    newer pit or a damaged one is replaced too. Meant for when no pit is running: a writer
    still open keeps writing to the store replaced."""
    fresh = path.with_name(f".{path.name}.rebuild-{os.getpid()}")
    from pit.store.rundir import RunPaths, list_run_folders, read_audit
    from pit.store.secretaudit import read_changes

    records = [record for _, record in list_run_folders(runs_dir) if record is not None]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # its failure names the folder, not `fresh`
        _remove_with_log(fresh)
        with RunStore.open(fresh) as store:
            store.put(records)
            for record in records:
                if audit := read_audit(RunPaths(root=runs_dir / record.run_id)):
                    store.put_audit(record.run_id, audit)
            store.put_secret_changes(read_changes(workspace))
            store.checkpoint()
        _remove_with_log(path, keep_main=True)
        os.replace(fresh, path)
    except (OSError, sqlite3.Error) as exc:
        _remove_with_log(fresh)
        raise StoreError(f"cannot rebuild the run store {path}: {exc}") from exc
    return len(records)


def _remove_with_log(path: Path, *, keep_main: bool = False) -> None:
    """Remove an SQLite file's write-ahead log and shared memory (and the file itself)."""
    for suffix in ("-wal", "-shm") if keep_main else ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # none to remove
            path.with_name(path.name + suffix).unlink()


def _migrate(connection: sqlite3.Connection, path: Path) -> None:
    try:
        _enter_wal(connection)
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at checkpoints
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the run store {path} was written by a newer pit (schema {version}; this pit "
                f"knows {SCHEMA_VERSION}): use that pit, or `pit store rebuild` to index the "
                "runs again for this one"
            )
        if version < SCHEMA_VERSION:
            _upgrade(connection)
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"the run store {path} cannot be read ({exc}): `pit store rebuild` makes it again "
            "from the run folders"
        ) from exc


def _enter_wal(connection: sqlite3.Connection) -> None:
    """Put the store in WAL mode. On a new store another connection may be doing the same:
    SQLite refuses the switch at once then (its lock could deadlock), rather than waiting, so
    try again for as long as a busy store is waited for."""
    deadline = time.monotonic() + _BUSY_TIMEOUT
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def _upgrade(connection: sqlite3.Connection) -> None:
    """Apply the migrations the store lacks, in one transaction taken before the version is
    read again: `pit serve` and its executor may open a new store at the same moment, and the
    second must find the first's tables, not make them again."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        for number in range(version, SCHEMA_VERSION):
            for statement in _MIGRATIONS[number].split(";"):  # no ";" inside the statements
                if statement.strip():
                    connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
