"""`pit run` keeps the run store current; `pit store rebuild` makes the same store again."""

from __future__ import annotations

import os

import attrs
import pytest

from pit.spec.states import RunState
from pit.store.rundir import read_manifest
from pit.store.runstore import RunStore
from tests.conftest import Pit, Workspace

pytestmark = pytest.mark.e2e


def test_each_run_is_in_the_store_as_its_run_json_has_it(workspace: Workspace, pit: Pit) -> None:
    workspace.shell_project("etl", {"extract": "echo one\n", "load": "exit 3\n"})
    assert pit("run", "etl").returncode == 1
    assert pit("run", "etl/extract").returncode == 0

    with RunStore.open(workspace.root / ".pit" / "pit.db") as store:
        indexed = store.runs()
    on_disk = [read_manifest(run / "run.json") for run in workspace.run_dirs("etl")]
    assert indexed == on_disk[::-1]
    assert [r.state for r in indexed] == [RunState.SUCCESS, RunState.FAILED]


def test_rebuild_makes_the_store_the_runs_kept_current(workspace: Workspace, pit: Pit) -> None:
    workspace.shell_project("etl", {"extract": "echo one\n"})
    workspace.config('metadata_db = "meta/runs.db"\n')
    for _ in range(3):
        assert pit("run", "etl").returncode == 0
    store = workspace.root / "meta" / "runs.db"
    with RunStore.open(store) as live:
        kept = live.dump()

    result = pit("store", "rebuild")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("3 runs from ")
    with RunStore.open(store) as rebuilt:
        assert rebuilt.dump() == kept


def test_a_store_pit_cannot_write_does_not_fail_the_run(workspace: Workspace, pit: Pit) -> None:
    workspace.shell_project("etl", {"extract": "echo one\n"})
    (workspace.root / ".pit").mkdir()
    (workspace.root / ".pit" / "pit.db").write_bytes(b"not a database" * 100)

    result = pit("run", "etl")

    assert result.returncode == 0
    assert "the run store" in result.stderr
    assert "pit store rebuild" in result.stderr
    assert pit("store", "rebuild").returncode == 0
    with RunStore.open(workspace.root / ".pit" / "pit.db") as store:
        assert len(store.runs()) == 1
    assert os.listdir(workspace.root / ".pit") == ["pit.db"]


def test_the_next_run_corrects_a_run_settled_after_its_pit_died(
    workspace: Workspace, pit: Pit
) -> None:
    workspace.shell_project("etl", {"extract": "echo one\n"})
    assert pit("run", "etl").returncode == 0
    (first,) = workspace.run_dirs("etl")
    on_disk = read_manifest(first / "run.json")
    with RunStore.open(workspace.root / ".pit" / "pit.db") as store:  # as if its pit died
        store.put([attrs.evolve(on_disk, state=RunState.RUNNING, ended_at=None)])

    assert pit("run", "etl").returncode == 0

    with RunStore.open(workspace.root / ".pit" / "pit.db") as store:
        assert store.get(on_disk.run_id) == on_disk
