"""Cost of capturing a chatty task's output: `pit run` against `bash task.sh > file`.

The task writes 200 MB (50 MB with --quick) to stdout as 100-byte lines:
`yes <99 characters> | head -c 200000000`. `yes` and `head` cost little and steadily, so the
figure is about moving the bytes, and lines (not one 200 MB line) are what real logs look like.

Measured, in rounds with a rotating order, medians:
  bash:        `bash task.sh > file` (the baseline), and `bash noop.sh > file`;
  pit:         `pit run` of a DAG holding just that task (output to its log file), and of a
               one-task no-op DAG;
  pit verbose: `pit run --verbose`: the output goes through a pipe into pit, which writes it to
               the log and streams it, line by line, to its stdout (here /dev/null).

Three ratios for each pit mode, against the wall time of `bash task.sh > file`:
  task:  the task's own duration as pit records it in run.json (from just before its process is
         started to just after it is reaped and its output drained) / T(bash, task). This is the
         cost of running the task and capturing its output, with pit's start-up and the end of
         the run left out, and it needs no subtraction of two noisy process times;
  gross: T(pit, task) / T(bash, task): whole processes, so pit's start-up (~0.5 s, more than the
         task itself) is inside;
  net:   (T(pit, task) - T(pit, noop)) / (T(bash, task) - T(bash, noop)), start-up subtracted as
         in overhead.py. Shown, but unreliable here: besides the noise of two ~0.5 s processes,
         when this was written the run.json writer held the end of a short run back by up to
         100 ms, by a different amount for the no-op run and the 200 MB one.

Target: the task ratio of the default mode <= 1.3x. Verbose mode, the gross and the net ratios
are information. After every pit run the task's log file must be exactly the attempt header line
plus every byte the task wrote, so no output is lost.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import sys
from pathlib import Path

from _harness import (
    NOOP_SCRIPT,
    Measure,
    Report,
    TaskDef,
    child_env,
    cleanup,
    common_args,
    fmt_seconds,
    make_tmp,
    median,
    medians_table,
    pit_argv,
    run_timed,
    table,
    validate_workspace,
    warmed_rounds,
    write_project,
)

TARGET = 1.3
LINE = "x" * 99  # `yes` adds the newline: 100-byte lines
HEADER = re.compile(rb"=== attempt 1/1 at [^\n]* ===\n")


def task_script(size: int) -> str:
    return f"#!/usr/bin/env bash\nyes {LINE} | head -c {size}\n"


def main() -> int:
    args = common_args(__doc__.splitlines()[0]).parse_args()
    size = 50_000_000 if args.quick else 200_000_000
    repeat = args.repeat or (3 if args.quick else 7)
    tmp = make_tmp("logs", args)
    try:
        return _run(tmp, args, size, repeat)
    finally:
        cleanup(tmp, args)


def _run(tmp: Path, args: argparse.Namespace, size: int, repeat: int) -> int:
    env = child_env(tmp, pyc_cache=not args.no_pyc_cache)
    workspace = tmp / "ws"
    spew = write_project(
        workspace,
        "spew",
        dag="spew",
        tasks=[TaskDef("spew", "tasks/spew.sh")],
        scripts={"tasks/spew.sh": task_script(size)},
    )
    noop = write_project(
        workspace,
        "noop",
        dag="noop",
        tasks=[TaskDef("noop", "tasks/noop.sh")],
        scripts={"tasks/noop.sh": NOOP_SCRIPT},
    )
    validate_workspace(workspace, env)
    runs_dir = workspace / "runs"
    out_file = tmp / "bash-out.txt"

    def bash(script: Path) -> Measure:
        def once() -> float:
            seconds = run_timed(["bash", str(script)], env=env, stdout=out_file)
            out_file.unlink()
            return seconds

        return once

    recorded: dict[str, list[float]] = {}

    def pit(dag: str, *flags: str, expect: int | None = None) -> Measure:
        def once() -> float:
            argv = [*pit_argv(), "-C", str(workspace), "run", *flags, dag]
            seconds = run_timed(argv, env=env)
            if expect is not None:
                duration = check_log(runs_dir, dag, expect)
                recorded.setdefault(" ".join(["pit", *flags]), []).append(duration)
            shutil.rmtree(runs_dir, ignore_errors=True)
            return seconds

        return once

    measurements = {
        "bash task": bash(spew / "tasks/spew.sh"),
        "bash noop": bash(noop / "tasks/noop.sh"),
        "pit task": pit("spew", expect=size),
        "pit noop": pit("noop"),
        "pit --verbose task": pit("spew", "--verbose", expect=size),
    }
    print(f"logs: {size / 1e6:.0f} MB of output, {repeat} rounds", file=sys.stderr)
    samples, med = warmed_rounds(measurements, repeat)

    print()
    print(medians_table("measurement", samples))
    bash_task, bash_net = med["bash task"], med["bash task"] - med["bash noop"]
    print(f"bash: {size / 1e6 / bash_net:.0f} MB/s for the output alone")
    report = Report("logs", quick=args.quick)
    rows = []
    for mode, name in (("pit", "pit task"), ("pit --verbose", "pit --verbose task")):
        task_time = median(recorded[mode])
        net = med[name] - med["pit noop"]
        ratios = {
            "task": task_time / bash_task,
            "gross": med[name] / bash_task,
            "net": net / bash_net,
        }
        rows.append(
            [
                mode,
                fmt_seconds(task_time),
                f"{size / 1e6 / task_time:.0f} MB/s",
                f"{ratios['task']:.2f}x",
                fmt_seconds(med[name]),
                f"{ratios['gross']:.2f}x",
                fmt_seconds(net),
                f"{ratios['net']:.2f}x",
            ]
        )
        detail = (
            f"task {fmt_seconds(task_time)} in pit vs {fmt_seconds(bash_task)} for bash > file; "
            f"whole process {ratios['gross']:.2f}x, net of start-up {ratios['net']:.2f}x"
        )
        if mode == "pit":
            report.check(
                "default mode, task time vs bash > file", ratios["task"], TARGET, detail=detail
            )
        else:
            report.info.append(f"--verbose (no target): {ratios['task']:.2f}x; {detail}")
    print()
    print(
        table(
            [
                "mode",
                "task (run.json)",
                "rate",
                "x bash",
                "T(pit run)",
                "x bash",
                "T - T(noop)",
                "x net",
            ],
            rows,
        )
    )
    print(
        f"(ratios against `bash task.sh > file`: {fmt_seconds(bash_task)}, "
        f"net of bash start-up {fmt_seconds(bash_net)})"
    )
    report.info.append("log files complete: header line + every byte, after every pit run")
    return report.finish(args.json)


def check_log(runs_dir: Path, dag: str, size: int) -> float:
    """Check the run's log is the attempt header and then exactly `size` bytes of the task's
    output; return the task's duration as run.json records it."""
    (run,) = [p for p in runs_dir.iterdir() if p.name.endswith(f"_{dag}")]
    log = run / "logs" / f"{dag}.log"
    with log.open("rb") as file:
        header = file.readline()
    actual = log.stat().st_size
    if not HEADER.fullmatch(header) or actual != len(header) + size:
        raise SystemExit(
            f"log {log} is {actual} bytes, expected {len(header)} (header {header[:60]!r}) "
            f"+ {size}: output was lost or mangled"
        )
    manifest = json.loads((run / "run.json").read_text())
    (task,) = [t for t in manifest["tasks"] if t["name"] == dag]
    if task["state"] != "success":
        raise SystemExit(f"task {dag} ended {task['state']}: {task['error']}")
    started = dt.datetime.fromisoformat(task["started_at"])
    ended = dt.datetime.fromisoformat(task["ended_at"])
    return (ended - started).total_seconds()


if __name__ == "__main__":
    sys.exit(main())
