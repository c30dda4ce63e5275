"""The run store: an SQLite index of the runs, rebuilt exactly from their run.json."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from pit.messages.run import RunOwner, RunRecord, TaskRecord
from pit.spec.states import RunState, TaskState
from pit.store.rundir import RunPaths, write_manifest
from pit.store.runstore import (
    _MIGRATIONS,
    SCHEMA_VERSION,
    Changes,
    RunStore,
    StoreError,
    rebuild,
    store_path,
)

T0 = dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC)


def record(run_id: str, state: RunState = RunState.SUCCESS, **fields: object) -> RunRecord:
    dag = run_id.rsplit("_", 1)[-1]
    defaults: dict[str, object] = {
        "trigger": "cron",
        "scheduled_time": T0,
        "started_at": T0,
        "ended_at": T0 + dt.timedelta(seconds=3),
        "tasks": (
            TaskRecord(name="extract", state=TaskState.SUCCESS, attempts=1, exit_code=0),
            TaskRecord(name="load", state=TaskState.FAILED, attempts=2, exit_code=3, error="x"),
        ),
        "owner": RunOwner(host="h", pid=12, boot_id="b", started=34),
    }
    return RunRecord(run_id=run_id, dag=dag, state=state, **(defaults | fields))  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    opened = RunStore.open(tmp_path / ".pit" / "pit.db")
    yield opened
    opened.close()


def test_a_record_put_is_read_back_whole(store: RunStore) -> None:
    kept = record("20261201_060000.000_etl", RunState.FAILED, error="load failed")

    store.put([kept])

    assert store.get(kept.run_id) == kept
    assert store.get("20261201_060000.000_nope") is None


def test_a_re_runs_links_are_kept(store: RunStore) -> None:
    old, new = "20261201_060000.000_etl", "20261201_070000.000_etl"
    reused = TaskRecord(name="extract", state=TaskState.SUCCESS, attempts=1, reused_from=old)
    rerun = record(new, rerun_of=old, tasks=(reused,))
    store.put([rerun])
    assert store.get(new) == rerun


def test_a_runs_latest_record_replaces_the_earlier_one_and_its_tasks(store: RunStore) -> None:
    run_id = "20261201_060000.000_etl"
    store.put([record(run_id, RunState.RUNNING, ended_at=None)])
    store.put([record(run_id, RunState.SUCCESS, tasks=(TaskRecord(name="only"),))])

    (found,) = store.runs()
    assert (found.state, [t.name for t in found.tasks]) == (RunState.SUCCESS, ["only"])
    assert [row for row in store.dump() if row[0] == "tasks"] == [
        ("tasks", run_id, 0, "only", "pending", 0, None, None, None, None, None)
    ]


def test_changes_update_the_run_and_only_the_tasks_named(store: RunStore) -> None:
    first = record("20261201_060000.000_etl", RunState.RUNNING, ended_at=None)
    store.put([first])
    extract, load = first.tasks
    later = attrs.evolve(
        first,
        state=RunState.FAILED,
        tasks=(attrs.evolve(extract, attempts=5), attrs.evolve(load, error="changed")),
    )

    store.put([Changes(later, frozenset({1}))])

    found = store.get(first.run_id)
    assert found is not None
    assert found.state is RunState.FAILED
    assert found.tasks == (extract, later.tasks[1])  # task 0 was not named: as it was


def test_runs_are_listed_newest_first_by_dag_state_and_page(store: RunStore) -> None:
    ids = [f"20261201_06000{i}.000_{dag}" for i, dag in enumerate(["etl", "crm", "etl", "etl"])]
    store.put(
        record(run_id, RunState.FAILED if i == 2 else RunState.SUCCESS)
        for i, run_id in enumerate(ids)
    )

    assert [r.run_id for r in store.runs()] == ids[::-1]
    assert [r.run_id for r in store.runs(dag="etl", limit=2)] == [ids[3], ids[2]]
    assert [r.run_id for r in store.runs(dag="etl", before=ids[2])] == [ids[0]]
    assert [r.run_id for r in store.runs(state=RunState.FAILED)] == [ids[2]]


def test_a_store_of_a_newer_pit_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "pit.db"
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")

    newer = rf"newer pit \(schema {SCHEMA_VERSION + 1}; this pit knows {SCHEMA_VERSION}\)"
    with pytest.raises(StoreError, match=rf"{newer}.*rebuild"):
        RunStore.open(path)


def test_a_damaged_store_says_to_rebuild(tmp_path: Path) -> None:
    path = tmp_path / "pit.db"
    path.write_bytes(b"this is not a database" * 100)

    with pytest.raises(StoreError, match=r"cannot be read.*pit store rebuild"):
        RunStore.open(path)


def write_runs(runs_dir: Path, records: list[RunRecord]) -> None:
    for kept in records:
        paths = RunPaths(root=runs_dir / kept.run_id)
        paths.root.mkdir(parents=True)
        write_manifest(paths, kept)


def test_rebuild_indexes_exactly_what_the_run_folders_hold(tmp_path: Path) -> None:
    records = [record(f"20261201_06000{i}.000_etl") for i in range(3)]
    records.append(record("20261201_060009.000_crm", RunState.RUNNING, ended_at=None))
    write_runs(tmp_path / "runs", records)
    (tmp_path / "runs" / "20261201_070000.000_etl").mkdir()  # no run.json: not a run to index
    live = RunStore.open(tmp_path / "live.db")
    live.put(records)

    assert rebuild(tmp_path / "rebuilt.db", tmp_path / "runs", tmp_path) == 4

    with RunStore.open(tmp_path / "rebuilt.db") as rebuilt:
        assert rebuilt.dump() == live.dump()
    live.close()


@pytest.mark.parametrize("old", [b"damaged" * 1000, None])
def test_rebuild_replaces_a_damaged_store_or_one_of_a_newer_pit(
    tmp_path: Path, old: bytes | None
) -> None:
    path = tmp_path / "pit.db"
    if old is None:
        with sqlite3.connect(path) as connection:
            connection.execute("PRAGMA user_version = 99")
    else:
        path.write_bytes(old)
    write_runs(tmp_path / "runs", [record("20261201_060000.000_etl")])

    assert rebuild(path, tmp_path / "runs", tmp_path) == 1

    with RunStore.open(path) as store:
        assert [r.run_id for r in store.runs()] == ["20261201_060000.000_etl"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pit.db", "runs"]


def test_the_store_is_under_the_workspace_unless_metadata_db_says(tmp_path: Path) -> None:
    assert store_path(tmp_path, None) == tmp_path / ".pit" / "pit.db"
    assert store_path(tmp_path, "meta/runs.db") == tmp_path / "meta" / "runs.db"
    assert store_path(tmp_path, "/var/lib/pit.db") == Path("/var/lib/pit.db")


def test_catch_up_takes_the_run_json_of_runs_held_as_not_ended(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    settled = record("20261201_060000.000_etl", RunState.FAILED, error="its pit died")
    still = record("20261201_060001.000_etl", RunState.RUNNING, ended_at=None)
    ended = record("20261201_060002.000_etl", RunState.SUCCESS)
    write_runs(runs, [settled, still, ended])
    with RunStore.open(tmp_path / "pit.db") as store:
        store.put(
            [
                attrs.evolve(
                    settled, state=RunState.RUNNING, error=None
                ),  # as its pit last wrote it
                still,
                attrs.evolve(ended, error="the store's copy of an ended run is left alone"),
                record("20261201_060003.000_etl", RunState.RUNNING),  # its folder removed since
            ]
        )

        assert store.catch_up(runs) == 2

        assert [(r.run_id, r.state, r.error) for r in store.runs()] == [
            (ended.run_id, RunState.SUCCESS, "the store's copy of an ended run is left alone"),
            (still.run_id, RunState.RUNNING, None),
            (settled.run_id, RunState.FAILED, "its pit died"),
        ]


def test_a_store_of_an_older_pit_is_brought_up_to_date_with_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "pit.db"
    with sqlite3.connect(path) as connection:  # a store as the first schema made it
        connection.executescript(_MIGRATIONS[0])
        connection.execute(
            "INSERT INTO runs (run_id, dag, trigger, state) VALUES (?, 'etl', 'cron', 'success')",
            ("20261201_060000.000_etl",),
        )
        connection.execute("PRAGMA user_version = 1")

    with RunStore.open(path) as store:
        assert [r.run_id for r in store.runs()] == ["20261201_060000.000_etl"]
        assert store.dag_facts() == {}
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_store_that_cannot_be_made_is_named_in_the_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    path = tmp_path / "a-file" / "pit.db"

    with pytest.raises(StoreError, match=r"cannot rebuild the run store .*a-file/pit\.db: "):
        rebuild(path, tmp_path / "runs", tmp_path)
    with pytest.raises(StoreError, match=r"cannot open the run store .*a-file/pit\.db: "):
        RunStore.open(path)


def test_writers_opening_a_new_store_at_once_all_get_it(tmp_path: Path) -> None:
    """pit serve and its executor open a store that does not exist yet at the same moment: the
    later one must find the first's tables rather than fail making them again."""
    import concurrent.futures
    import threading

    for attempt in range(10):
        path = tmp_path / f"pit-{attempt}.db"
        ready = threading.Barrier(4)

        def open_and_write(path: Path = path, ready: threading.Barrier = ready) -> int:
            ready.wait()
            with RunStore.open(path) as store:
                store.put([record("20261201_060000.000_etl")])
                return int(store._db.execute("PRAGMA user_version").fetchone()[0])

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            versions = [f.result() for f in [pool.submit(open_and_write) for _ in range(4)]]
        assert versions == [SCHEMA_VERSION] * 4


def test_every_attempt_of_a_task_is_a_row_and_a_history_round_trips(store: RunStore) -> None:
    from pit.messages.run import Attempt

    tried = TaskRecord(
        name="load",
        state=TaskState.SUCCESS,
        attempts=2,
        exit_code=0,
        started_at=T0,
        ended_at=T0 + dt.timedelta(seconds=9),
        history=(
            Attempt(number=1, started_at=T0, ended_at=T0 + dt.timedelta(seconds=1), exit_code=3),
            Attempt(number=2, started_at=T0 + dt.timedelta(seconds=5), exit_code=0),
        ),
    )
    once = TaskRecord(name="extract", state=TaskState.SUCCESS, attempts=1, exit_code=0)
    kept = record("20261201_060000.000_etl", tasks=(once, tried))
    store.put([kept])

    assert store.get(kept.run_id) == kept
    rows = [row[2:5] for row in store.dump() if row[0] == "attempts"]
    assert rows == [("extract", 1, "success"), ("load", 1, "failed"), ("load", 2, "success")]


def test_the_secret_accesses_of_a_run_are_indexed_from_its_audit_file(tmp_path: Path) -> None:
    import json

    runs_dir = tmp_path / "runs"
    run = record("20261201_060000.000_etl")
    paths = RunPaths(root=runs_dir / run.run_id)
    paths.root.mkdir(parents=True)
    write_manifest(paths, run)
    access = {"run_id": run.run_id, "task": "load", "verified": True, "method": "get_secret"}
    lines = [json.dumps({**access, "secret": name, "at": "t"}) for name in ("db", "api")]
    (paths.root / "secret_access.jsonl").write_text("\n".join([*lines, "{damaged"]) + "\n")

    with RunStore.open(tmp_path / "pit.db") as store:
        store.put([run])
        store.index_audits(runs_dir, [run.run_id])
        held = [row[1:] for row in store.dump() if row[0] == "secret_access"]
    assert [(row[0], row[1], row[6]) for row in held] == [
        (run.run_id, 0, "db"),
        (run.run_id, 1, "api"),
    ]
    rebuild(tmp_path / "rebuilt.db", runs_dir, tmp_path)
    with RunStore.open(tmp_path / "rebuilt.db") as rebuilt:
        assert [row[1:] for row in rebuilt.dump() if row[0] == "secret_access"] == held
