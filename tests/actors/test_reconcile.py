"""A run left `running` by an owner that is gone is settled, and its processes ended, when
pit next reads it (pit serve at start, pit logs)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from pit.actors.reconcile import settle_dead_runs, settle_if_owner_died
from pit.messages.run import RunOwner, RunRecord, TaskRecord
from pit.spec.states import RunState, TaskState
from pit.store.owner import this_process
from pit.store.rundir import RunPaths, read_manifest, write_manifest

pytestmark = pytest.mark.slow

AT = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)
RUN_ID = "20261202_120000.000_etl"


def dead_owner() -> RunOwner:
    """The owner record of a process that has ended (its pid may be reused: its start differs)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return RunOwner(
        host=this_process().host, pid=process.pid, boot_id=this_process().boot_id, started=1
    )


def running_record(owner: RunOwner) -> RunRecord:
    return RunRecord(
        run_id=RUN_ID,
        dag="etl",
        trigger="cron",
        state=RunState.RUNNING,
        started_at=AT,
        owner=owner,
        tasks=(
            TaskRecord(name="extract", state=TaskState.RUNNING, started_at=AT),
            TaskRecord(name="load"),
        ),
    )


@pytest.fixture
def paths(tmp_path: Path) -> RunPaths:
    root = tmp_path / "runs" / RUN_ID
    root.mkdir(parents=True)
    return RunPaths(root=root)


@pytest.fixture
def orphan_task() -> Iterator[subprocess.Popen[bytes]]:
    """A task process of the run, left running by its dead owner."""
    process = subprocess.Popen(
        ["sleep", "300"], env={**os.environ, "PIT_RUN_ID": RUN_ID}, start_new_session=True
    )
    yield process
    process.kill()
    process.wait()


def test_a_run_of_a_dead_owner_is_settled_and_its_task_killed(
    paths: RunPaths, orphan_task: subprocess.Popen[bytes]
) -> None:
    owner = dead_owner()
    write_manifest(paths, running_record(owner))

    (settled,) = settle_dead_runs(paths.root.parent, AT)

    assert orphan_task.wait(timeout=5) == -9
    assert settled == read_manifest(paths.manifest)
    assert settled.state is RunState.FAILED
    who = f"pit (pid {owner.pid} on {owner.host})"
    assert settled.error == f"interrupted by a crash: {who} died while the run was going"
    assert {t.name: t.state for t in settled.tasks} == {
        "extract": TaskState.FAILED,
        "load": TaskState.SKIPPED,
    }


def test_a_run_of_a_living_owner_is_left_alone(paths: RunPaths) -> None:
    record = running_record(this_process())
    write_manifest(paths, record)

    assert settle_dead_runs(paths.root.parent, AT) == []
    assert settle_if_owner_died(paths, record, AT) is record
    assert read_manifest(paths.manifest) == record


def test_a_run_of_another_host_or_without_an_owner_is_left_alone(paths: RunPaths) -> None:
    elsewhere = running_record(RunOwner(host="elsewhere", pid=1, boot_id="b", started=1))
    write_manifest(paths, elsewhere)
    assert settle_dead_runs(paths.root.parent, AT) == []

    write_manifest(paths, attrs.evolve(elsewhere, owner=None))  # written before owners were kept
    assert settle_dead_runs(paths.root.parent, AT) == []
    assert read_manifest(paths.manifest).state is RunState.RUNNING
