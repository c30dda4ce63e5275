"""What the run store costs a run: a fan-out of N `true` tasks with the store on and off.

The same DAG (N = 500 independent `.sh` tasks running `true`, 100 with --quick;
`max_active_tasks = 2`) is run by a small driver in a fresh Python process, the way `pit run`
runs it (`execute_run`, the run folder, run.json, the view left out on both sides), once with
the run store's writer fed every record written to run.json and once without it. Whole
processes, wall clock, rounds in a rotating order; the figures are medians.

Target: the run with the store <= 1.05x the run without it. Also shown: the CPU time of pit's
process on each side (its tasks not counted), a figure this machine's noise moves less.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from _harness import (
    PYTHON,
    Report,
    child_env,
    cleanup,
    common_args,
    fmt_seconds,
    make_tmp,
    median,
    medians_table,
    run_timed,
    warmed_rounds,
    write_dag_of,
)

TARGET = 1.05
MAX_ACTIVE = 2
TRUE_SCRIPT = "#!/bin/sh\ntrue\n"

DRIVER = '''\
"""Run one DAG as `pit run` does, with the run store (argv[3] == "store") or without it."""
import os
import resource
import sys
from pathlib import Path

import trio

from pit.actors.execute import execute_run
from pit.actors.plans import plan_run
from pit.actors.store import StoreWriter
from pit.clock import SystemClock
from pit.spec.load import load_workspace
from pit.spec.states import RunState
from pit.store.runstore import store_path


async def main(root, dag, with_store):
    workspace = load_workspace(Path(root))
    plan = plan_run(workspace.find(dag), workspace)
    path = store_path(workspace.root, None)
    writer = StoreWriter(path=path, runs_dir=workspace.runs_dir) if with_store else None
    async with trio.open_nursery() as nursery:
        if writer is not None:
            nursery.start_soon(writer.run)
        try:
            record = await execute_run(plan, clock=SystemClock(), env=os.environ, store=writer)
        finally:
            if writer is not None:
                writer.close()
    if record.state is not RunState.SUCCESS:
        sys.exit(f"the run did not succeed: {record.state}")


trio.run(main, sys.argv[1], sys.argv[2], sys.argv[3] == "store")
used = resource.getrusage(resource.RUSAGE_SELF)  # this process, all its threads; not the tasks
with open(sys.argv[4], "a") as out:
    out.write(f"{used.ru_utime + used.ru_stime}\\n")
'''


def main() -> int:
    args = common_args(__doc__.splitlines()[0]).parse_args()
    repeat = args.repeat or (3 if args.quick else 9)
    tasks = 100 if args.quick else 500
    tmp = make_tmp("store", args)
    try:
        return _run(tmp, args.quick, args.json, repeat, tasks, pyc_cache=not args.no_pyc_cache)
    finally:
        cleanup(tmp, args)


def _run(
    tmp: Path, quick: bool, json_path: Path | None, repeat: int, tasks: int, *, pyc_cache: bool
) -> int:
    env = child_env(tmp, pyc_cache=pyc_cache)
    workspace = tmp / "ws"
    write_dag_of(workspace, "fan", tasks, TRUE_SCRIPT, chain=False, max_active_tasks=MAX_ACTIVE)
    driver = tmp / "driver.py"
    driver.write_text(DRIVER)

    cpu = {"store": tmp / "cpu-store.txt", "none": tmp / "cpu-none.txt"}

    def measure(side: str) -> float:
        argv = [PYTHON, str(driver), str(workspace), "fan", side, str(cpu[side])]
        seconds = run_timed(argv, env=env)
        shutil.rmtree(workspace / "runs", ignore_errors=True)
        return seconds

    sides = {"with the store": lambda: measure("store"), "without": lambda: measure("none")}
    samples, med = warmed_rounds(sides, repeat)
    print()
    print(medians_table("run of a fan-out", samples))
    used = {side: median(map(float, path.read_text().split())) for side, path in cpu.items()}
    report = Report("store", quick=quick)
    report.check(
        f"fan-out of {tasks} with the run store / without",
        med["with the store"] / med["without"],
        TARGET,
        detail=f"{fmt_seconds(med['with the store'])} vs {fmt_seconds(med['without'])}",
    )
    report.info.append(
        f"CPU of pit's process (its tasks not counted), medians: {used['store']:.2f}s with the "
        f"store, {used['none']:.2f}s without ({used['store'] / used['none']:.2f}x)"
    )
    return report.finish(json_path)


if __name__ == "__main__":
    sys.exit(main())
