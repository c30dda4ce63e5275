"""A year of daily fires by `pit backfill` in one process, against the same runs by `pit run`.

Workspace (generated; one of each side, built alike): an empty `pit_config.toml` and one DAG,
`daily` (`projects/daily/pit.toml`: `schedule = "0 6 * * *"`, `timezone = "UTC"`), of 3 shell
tasks in a chain, a -> b -> c, each `tasks/<x>.sh` an `echo` (run by pit with bash).

- backfill: one `pit -C <ws> backfill daily --from 2025-01-01 --to 2025-12-31 --max-parallel 1`
  process (365 fires; `--quick`: to 2025-01-30, 30 fires), timed end to end by wall clock. It
  must exit 0 and leave one run folder per fire, each `run.json` in state `success`, their
  scheduled times the fires, all different.
- one by one (the baseline): as many `pit -C <ws> run daily` processes, started one after the
  other, each timed by wall clock; the figure is their sum. Each must exit 0, and afterwards as
  many run folders must be there, each in state `success`.

A backfill skips fires whose run succeeded, so each side's `runs/` and `.pit/` (the run store)
are removed before each of its measurements (outside the timing); within a measurement the runs
pile up as they would for a user. stdout goes to DEVNULL (pit's plain view). One untimed warm-up
of each side (3 fires, 3 runs: the byte-code cache), then rounds alternating the two sides
(default 2, `--quick` 1: a full round takes about 2 minutes, nearly all of it the baseline's
365 process start-ups); figures are medians of the totals. `info` lines give the spread of the
baseline's single `pit run` processes.

Target: backfill time <= 0.5x the one-by-one time (the issue: "a backfill of 365 daily fires of
a 3-task DAG (`--max-parallel 1`) takes <= 0.5x the time of the same 365 runs started one by one
with `pit run`").
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from _harness import (
    Measure,
    Report,
    child_env,
    cleanup,
    common_args,
    fmt_seconds,
    make_tmp,
    median,
    medians_table,
    pit_argv,
    rounds,
    run_timed,
    spread,
    toml_string,
    validate_workspace,
)

TARGET = 0.5
DAG = "daily"
SCHEDULE = "0 6 * * *"
TASKS = ("a", "b", "c")
FIRST_DAY = dt.date(2025, 1, 1)
FULL_FIRES, QUICK_FIRES, WARM_UP_FIRES = 365, 30, 3
BACKFILL, ONE_BY_ONE = "backfill", "one by one"


def build_workspace(workspace: Path) -> None:
    """The `daily` DAG: a -> b -> c, each task a bash `echo`, and an empty pit_config.toml."""
    project = workspace / "projects" / DAG
    (project / "tasks").mkdir(parents=True)
    (workspace / "pit_config.toml").write_text("")
    lines = [
        "[dag]",
        f"name = {toml_string(DAG)}",
        f"schedule = {toml_string(SCHEDULE)}",
        'timezone = "UTC"',
    ]
    for index, task in enumerate(TASKS):
        lines += ["", "[[tasks]]", f"name = {toml_string(task)}"]
        lines.append(f"script = {toml_string(f'tasks/{task}.sh')}")
        if index > 0:
            lines.append(f"depends_on = [{toml_string(TASKS[index - 1])}]")
        script = project / "tasks" / f"{task}.sh"
        script.write_text(f'#!/usr/bin/env bash\necho "task {task} done"\n')
        script.chmod(0o755)
    (project / "pit.toml").write_text("\n".join(lines) + "\n")


def reset(workspace: Path) -> None:
    """No run of the DAG, no run store: what a backfill (or the first `pit run`) starts from."""
    for folder in ("runs", ".pit"):
        shutil.rmtree(workspace / folder, ignore_errors=True)


def run_records(workspace: Path) -> list[dict[str, object]]:
    folders = sorted((workspace / "runs").glob(f"*_{DAG}"))
    return [json.loads((folder / "run.json").read_text()) for folder in folders]


def check_runs(workspace: Path, side: str, count: int, *, scheduled: bool) -> None:
    """`count` run folders, each `success`; a backfill's with `count` different scheduled
    times from FIRST_DAY on, at 06:00 UTC."""
    records = run_records(workspace)
    states = [record["state"] for record in records]
    if len(records) != count or any(state != "success" for state in states):
        bad = sorted({str(s) for s in states if s != "success"})
        raise SystemExit(
            f"backfill: the {side} side left {len(records)} runs (expected {count}), "
            f"states other than success: {bad or 'none'}"
        )
    if scheduled:
        times = {str(record["scheduled_time"]) for record in records}
        first = dt.datetime.combine(FIRST_DAY, dt.time(6), tzinfo=dt.UTC)
        wanted = {first + dt.timedelta(days=day) for day in range(count)}
        if {dt.datetime.fromisoformat(t) for t in times} != wanted:
            raise SystemExit(f"backfill: the runs' scheduled times are not the {count} fires")


def last_day(fires: int) -> str:
    return (FIRST_DAY + dt.timedelta(days=fires - 1)).isoformat()


def main() -> int:
    parser = common_args(__doc__.splitlines()[0])
    args = parser.parse_args()
    repeat = args.repeat or (1 if args.quick else 2)
    fires = QUICK_FIRES if args.quick else FULL_FIRES
    tmp = make_tmp("backfill", args)
    try:
        return _run(tmp, args, repeat, fires)
    finally:
        cleanup(tmp, args)


def _run(tmp: Path, args: argparse.Namespace, repeat: int, fires: int) -> int:
    env = child_env(tmp, pyc_cache=not args.no_pyc_cache)
    workspaces = {BACKFILL: tmp / "ws-backfill", ONE_BY_ONE: tmp / "ws-run"}
    for workspace in workspaces.values():
        build_workspace(workspace)
        validate_workspace(workspace, env)
    single_runs: list[float] = []

    def backfill(count: int) -> Measure:
        workspace = workspaces[BACKFILL]
        argv = [*pit_argv(), "-C", str(workspace), "backfill", DAG]
        argv += ["--from", FIRST_DAY.isoformat(), "--to", last_day(count), "--max-parallel", "1"]

        def measure() -> float:
            reset(workspace)
            seconds = run_timed(argv, env=env)  # exit code 0, or the benchmark stops
            check_runs(workspace, BACKFILL, count, scheduled=True)
            return seconds

        return measure

    def one_by_one(count: int, record: Callable[[float], None] | None = None) -> Measure:
        workspace = workspaces[ONE_BY_ONE]
        argv = [*pit_argv(), "-C", str(workspace), "run", DAG]

        def measure() -> float:
            reset(workspace)
            total = 0.0
            for _ in range(count):
                seconds = run_timed(argv, env=env)  # exit code 0, or the benchmark stops
                total += seconds
                if record is not None:
                    record(seconds)
            check_runs(workspace, ONE_BY_ONE, count, scheduled=False)
            return total

        return measure

    print(
        f"backfill: {fires} daily fires of a 3-task chain, `pit backfill --max-parallel 1` "
        f"against {fires} `pit run` one by one, {repeat} round{'s' * (repeat != 1)} "
        "(after a warm-up of 3 runs each)",
        file=sys.stderr,
        flush=True,
    )
    backfill(WARM_UP_FIRES)()
    one_by_one(WARM_UP_FIRES)()
    samples = rounds(
        {BACKFILL: backfill(fires), ONE_BY_ONE: one_by_one(fires, single_runs.append)}, repeat
    )
    med = {side: median(values) for side, values in samples.items()}
    per_run = {side: med[side] / fires for side in med}

    report = Report("backfill", quick=args.quick)
    print()
    print(medians_table(f"{fires} runs of {DAG}, total", samples))
    report.info.append(
        ", ".join(
            f"{side} {med[side]:.2f}s in all ({per_run[side] * 1000:.1f}ms per run)"
            for side in (BACKFILL, ONE_BY_ONE)
        )
        + ", medians"
    )
    report.info.append(
        f"single `pit run {DAG}` processes: median {fmt_seconds(median(single_runs))}, "
        f"{spread(single_runs)} ({len(single_runs)} timed)"
    )
    report.check(
        f"backfill of {fires} daily fires (3-task chain, --max-parallel 1) / {fires} pit runs "
        "one by one",
        med[BACKFILL] / med[ONE_BY_ONE],
        TARGET,
        detail=f"{med[BACKFILL]:.2f}s vs {med[ONE_BY_ONE]:.2f}s",
    )
    if args.quick:
        report.info.append(
            f"--quick: {fires} fires ({FULL_FIRES} in the full run), {repeat} round(s)"
        )
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
