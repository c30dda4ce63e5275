"""A pit bug inside one run fails that run, truthfully, and nothing else."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

import pit.actors.execute
from pit.actors.execute import execute_run
from pit.clock import FixedClock
from pit.messages.run import RunRecord
from pit.runners.command import build_launch
from pit.spec.dag import DagSpec
from pit.spec.states import RunState, TaskState
from pit.store.rundir import CRASH_LOG, RunPaths, read_manifest

from .processbench import T0, Bench, bounded_nursery, dag, still_running, task, write_scripts

pytestmark = pytest.mark.slow


async def test_an_exception_in_one_run_fails_it_and_its_sibling_run_goes_on(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    def launch_with_a_bug(place, spec, attempt):  # type: ignore[no-untyped-def]
        if spec.name == "buggy":
            raise ZeroDivisionError("a bug in pit")
        return build_launch(place, spec, attempt)

    # The one way to put a bug in pit on purpose: replace the launch builder for one task.
    monkeypatch.setattr(pit.actors.execute, "build_launch", launch_with_a_bug)
    write_scripts(
        bench.project,
        {
            "slow.sh": 'echo $$ >> "$PIDS"\nsleep 300\n',
            "buggy.sh": "exit 0\n",
            "fine.sh": "sleep 0.5\n",
        },
    )
    broken = DagSpec(name="broken", tasks=(task("slow"), task("buggy")))
    records: dict[str, RunRecord] = {}

    async def run(name: str, spec: DagSpec, runs: Path) -> None:
        records[name] = await execute_run(
            attrs.evolve(bench.request(spec), runs_dir=runs), clock=FixedClock(T0), env=bench.env
        )

    async with bounded_nursery() as nursery:
        nursery.start_soon(run, "broken", broken, bench.tmp / "runs-a")
        nursery.start_soon(run, "fine", dag(task("fine")), bench.tmp / "runs-b")

    assert records["fine"].state is RunState.SUCCESS
    crashed = records["broken"]
    assert crashed.state is RunState.FAILED
    assert crashed.error is not None
    assert crashed.error.startswith("internal error: ZeroDivisionError: a bug in pit")
    (folder,) = (bench.tmp / "runs-a").iterdir()
    paths = RunPaths(root=folder)
    assert read_manifest(paths.manifest) == crashed
    assert "ZeroDivisionError: a bug in pit" in (folder / CRASH_LOG).read_text()
    assert all(t.state.terminal for t in crashed.tasks)
    assert {t.name: t.state for t in crashed.tasks}["slow"] is TaskState.FAILED
    assert await still_running(bench.pids()) == []
