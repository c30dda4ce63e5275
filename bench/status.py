"""`pit status` on a big history: 100 DAGs and 100,000 runs in the run store.

The workspace is the 100 projects of `startup.py`'s validate workspace (each a cron schedule,
so every line computes its next fire time); the store gets 1,000 finished runs of each DAG (4
tasks each), written straight into it. `pit status` and `pit status --json` are timed as whole
processes (pit as this venv has it, with the byte-code cache of `_harness.child_env`), in
rounds; figures are medians.

Target: `pit status` answers in < 100 ms (an absolute figure, as the issue states it); shown
beside `python -c "import attrs"` for scale.
"""

from __future__ import annotations

import datetime as dt
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
    medians_table,
    pit_argv,
    run_timed,
    warmed_rounds,
)
from startup import PROJECTS, build_validate_workspace

from pit.messages.run import RunRecord, TaskRecord
from pit.spec.states import RunState, TaskState
from pit.store.runstore import RunStore, store_path

TARGET_SECONDS = 0.100
RUNS_PER_DAG = 1000
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def fill_store(workspace: Path, runs_per_dag: int) -> int:
    """`runs_per_dag` runs of each project's DAG, one in ten failed; returns how many."""
    records = []
    for project in sorted((workspace / "projects").iterdir()):
        for n in range(runs_per_dag):
            started = T0 + dt.timedelta(minutes=10 * n)
            state = RunState.FAILED if n % 10 == 3 else RunState.SUCCESS
            records.append(
                RunRecord(
                    run_id=f"{started:%Y%m%d_%H%M%S}.000_{project.name}",
                    dag=project.name,
                    trigger="cron",
                    scheduled_time=started,
                    state=state,
                    started_at=started,
                    ended_at=started + dt.timedelta(seconds=42),
                    tasks=tuple(
                        TaskRecord(name=name, state=TaskState.SUCCESS, attempts=1, exit_code=0)
                        for name in ("extract", "transform", "load", "report")
                    ),
                )
            )
    with RunStore.open(store_path(workspace, None)) as store:
        store.put(records)
        store.checkpoint()
    return len(records)


def main() -> int:
    args = common_args(__doc__.splitlines()[0]).parse_args()
    repeat = args.repeat or (3 if args.quick else 9)
    runs_per_dag = 100 if args.quick else RUNS_PER_DAG
    tmp = make_tmp("status", args)
    try:
        env = child_env(tmp, pyc_cache=not args.no_pyc_cache)
        workspace = tmp / "ws"
        build_validate_workspace(workspace, PROJECTS)
        print("status: filling the run store ...", file=sys.stderr, flush=True)
        runs = fill_store(workspace, runs_per_dag)
        pit = [*pit_argv(), "-C", str(workspace), "status"]
        measurements = {
            'python -c "import attrs"': lambda: run_timed([PYTHON, "-c", "import attrs"], env=env),
            "pit status": lambda: run_timed(pit, env=env),
            "pit status --json": lambda: run_timed([*pit, "--json"], env=env),
        }
        samples, med = warmed_rounds(measurements, repeat)
        print()
        print(medians_table(f"{PROJECTS} DAGs, {runs:,} runs", samples))
        report = Report("status", quick=args.quick)
        for name in ("pit status", "pit status --json"):
            report.check(
                f"{name}, {PROJECTS} DAGs and {runs:,} runs",
                med[name] * 1000,
                TARGET_SECONDS * 1000,
                unit=" ms",
                detail=f"{fmt_seconds(med[name])}",
            )
        return report.finish(args.json)
    finally:
        cleanup(tmp, args)


if __name__ == "__main__":
    sys.exit(main())
