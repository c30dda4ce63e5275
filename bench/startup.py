"""Start-up cost of the `pit` command against importing its three main libraries.

  validate: `pit -C <ws> validate` on a generated workspace of 100 valid projects (100 with
            --quick too: the size is what is measured), each a pit.toml of 4 tasks with
            dependencies, a cron schedule and a timeout, and its script files;
  run:      `pit -C <ws> run one` on a workspace holding one DAG of one no-op `.sh` task;
  baseline: `python -c "import trio, attrs, typer"` with the same interpreter as pit (the uv
            venv's), so both sides pay the same interpreter start.

Each is a whole process timed by wall clock (stdout to DEVNULL), in rounds with a rotating order;
the figures are medians. `python -c pass` is shown too, for scale.

Targets: validate <= 2x the baseline, run <= 3x.

`--explain` also runs each command once under `python -X importtime` and lists the biggest
top-level imports, which is where start-up time mostly goes.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from _harness import (
    NOOP_SCRIPT,
    PYTHON,
    Measure,
    Report,
    TaskDef,
    child_env,
    cleanup,
    common_args,
    fmt_seconds,
    make_tmp,
    median,
    pit_argv,
    rounds,
    run_timed,
    spread,
    table,
    validate_workspace,
    write_project,
)

PROJECTS = 100
VALIDATE_TARGET = 2.0
RUN_TARGET = 3.0
BASELINE = [PYTHON, "-c", "import trio, attrs, typer"]

PYTHON_TASK = 'print("transformed")\n'
SQL_TASK = "select 1;\n"


def build_validate_workspace(workspace: Path, projects: int) -> None:
    workspace.mkdir(parents=True)
    (workspace / "pit_config.toml").write_text('runs_dir = "runs"\nmax_active_tasks = 8\n')
    for i in range(projects):
        dag = f"project_{i:03d}"
        tasks = [
            TaskDef("extract", "tasks/extract.sh"),
            TaskDef("transform", "tasks/transform.py", ("extract",)),
            TaskDef("load", "tasks/load.sql", ("transform",)),
            TaskDef("report", "tasks/report.sh", ("load", "extract")),
        ]
        write_project(
            workspace,
            dag,
            dag=dag,
            tasks=tasks,
            scripts={
                "tasks/extract.sh": NOOP_SCRIPT,
                "tasks/transform.py": PYTHON_TASK,
                "tasks/load.sql": SQL_TASK,
                "tasks/report.sh": NOOP_SCRIPT,
            },
            schedule=f"{i % 60} {i % 24} * * {i % 7}",
            timeout="30m",
            max_active_tasks=2,
        )
        with (workspace / "projects" / dag / "pit.toml").open("a") as pit_toml:
            pit_toml.write('\n[dag.sql]\nconnection = "warehouse"\n')  # SQL tasks need one


def build_run_workspace(workspace: Path) -> None:
    write_project(
        workspace,
        "one",
        dag="one",
        tasks=[TaskDef("noop", "tasks/noop.sh")],
        scripts={"tasks/noop.sh": NOOP_SCRIPT},
    )


def main() -> int:
    parser = common_args(__doc__.splitlines()[0])
    parser.add_argument(
        "--explain", action="store_true", help="show the biggest imports (-X importtime)"
    )
    args = parser.parse_args()
    repeat = args.repeat or (3 if args.quick else 9)
    tmp = make_tmp("startup", args)
    try:
        return _run(tmp, args, repeat)
    finally:
        cleanup(tmp, args)


def _run(tmp: Path, args: argparse.Namespace, repeat: int) -> int:
    env = child_env(tmp, pyc_cache=not args.no_pyc_cache)
    validate_ws, run_ws = tmp / "validate_ws", tmp / "run_ws"
    build_validate_workspace(validate_ws, PROJECTS)
    build_run_workspace(run_ws)
    validate_workspace(validate_ws, env)
    validate_workspace(run_ws, env)

    commands = {
        "baseline (import trio, attrs, typer)": BASELINE,
        f"pit validate ({PROJECTS} projects)": [*pit_argv(), "-C", str(validate_ws), "validate"],
        "pit run (1 no-op task)": [*pit_argv(), "-C", str(run_ws), "run", "one"],
        "python -c pass": [PYTHON, "-c", "pass"],
    }

    def measure(argv: Sequence[str]) -> Measure:
        def once() -> float:
            seconds = run_timed(argv, env=env)
            shutil.rmtree(run_ws / "runs", ignore_errors=True)
            return seconds

        return once

    measurements = {name: measure(argv) for name, argv in commands.items()}
    print(f"startup: {repeat} rounds", file=sys.stderr)
    for once in measurements.values():  # warm-up: byte-code cache, page cache
        once()
    samples = rounds(measurements, repeat)
    med = {name: median(values) for name, values in samples.items()}
    names = list(commands)
    baseline = med[names[0]]

    print()
    print(
        table(
            ["command", "median", "min..max", "x baseline"],
            [
                [
                    name,
                    fmt_seconds(med[name]),
                    spread(samples[name]),
                    f"{med[name] / baseline:.2f}x",
                ]
                for name in names
            ],
        )
    )
    report = Report("startup", quick=args.quick)
    report.check(
        "pit validate / baseline",
        med[names[1]] / baseline,
        VALIDATE_TARGET,
        detail=f"{fmt_seconds(med[names[1]])} vs {fmt_seconds(baseline)}",
    )
    report.check(
        "pit run / baseline",
        med[names[2]] / baseline,
        RUN_TARGET,
        detail=f"{fmt_seconds(med[names[2]])} vs {fmt_seconds(baseline)}",
    )
    if args.explain:
        for name in names[:3]:
            explain_imports(name, commands[name], env)
    return report.finish(args.json)


_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def explain_imports(name: str, argv: Sequence[str], env: Mapping[str, str], top: int = 12) -> None:
    """The biggest top-level imports of one run of `argv` (a python program or console script)."""
    program = argv if argv[0] == PYTHON else [PYTHON, *argv]
    done = subprocess.run(
        [program[0], "-X", "importtime", *program[1:]],
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
    )
    entries = []
    total = 0
    for line in done.stderr.splitlines():
        if match := _IMPORT_LINE.match(line):
            _self, cumulative_us, indent, module = match.groups()
            if len(indent) == 1:  # a top-level import (importtime indents one space at the top)
                entries.append((int(cumulative_us), module))
                total += int(cumulative_us)
    entries.sort(reverse=True)
    print(f"\nimports of {name}: {total / 1000:.0f}ms in all (under -X importtime)")
    for cumulative_us, module in entries[:top]:
        print(f"  {cumulative_us / 1000:8.1f}ms  {module}")


if __name__ == "__main__":
    sys.exit(main())
