"""Per-task overhead of `pit run` against a bare Python pool running the same scripts.

Two DAG shapes, both with `max_active_tasks = 2`:
  fan-out: N no-op `.sh` tasks with no dependencies (N = 500; 100 with --quick);
  chain:   N no-op `.sh` tasks, each depending on the one before (N = 100; 30 with --quick).

The baseline is a small Python program (`pool.py`, written into the workspace) that runs the same
script files with `subprocess.run(["bash", script])`: through a ThreadPoolExecutor(2) for the
fan-out, one after another for the chain.

Both sides are timed as whole processes (wall clock, stdout to DEVNULL so pit uses its plain view)
on the N-task shape and on a 1-task shape, and compared by their marginal cost per task,
(T(N) - T(1)) / (N - 1): start-up is measured apart (bench/startup.py) and cancels out here. Every
round runs all six measurements in a rotating order; the figures are medians over the rounds.

Target: pit's marginal cost per task <= 1.25x the pool's, on both shapes.

For reference (no target; `--no-floor` skips it), the same scripts are also run by a bare trio
program (`floor.py`): `trio.lowlevel.open_process` + `wait` per script, a Semaphore(2) for the
fan-out, with each task's output going to DEVNULL ("trio") or to a log file it creates
("trio+logs", as pit does). That is the floor of any trio runner with a log file per task: the
part of pit's cost above it is pit's own machinery (actors, events, run.json, snapshot, view).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from _harness import (
    NOOP_SCRIPT,
    PYTHON,
    Measure,
    Report,
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
    write_dag_of,
)

TARGET = 1.25
MAX_ACTIVE = 2

POOL_PROGRAM = '''\
"""The baseline: run the listed scripts with bash, 2 at a time (fanout) or one by one (chain)."""
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor


def run(script):
    subprocess.run(["bash", script], check=True)


mode, listing = sys.argv[1], sys.argv[2]
with open(listing) as file:
    scripts = file.read().split()
if mode == "fanout":
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(run, scripts))
else:
    for script in scripts:
        run(script)
'''

FLOOR_PROGRAM = '''\
"""Reference: the same scripts run by bare trio, output to DEVNULL or to a log file per task."""
import os
import subprocess
import sys

import trio

mode, listing, log_dir = sys.argv[1], sys.argv[2], sys.argv[3]
with open(listing) as file:
    scripts = file.read().split()
if log_dir != "-":
    os.mkdir(log_dir)


async def run(index, script):
    if log_dir == "-":
        process = await trio.lowlevel.open_process(
            ["bash", script], stdin=subprocess.DEVNULL, start_new_session=True
        )
        await process.wait()
        return
    with open(os.path.join(log_dir, f"{index}.log"), "ab", buffering=0) as log:
        process = await trio.lowlevel.open_process(
            ["bash", script],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        await process.wait()


async def main():
    if mode == "fanout":
        limit = trio.Semaphore(2)

        async def limited(index, script):
            async with limit:
                await run(index, script)

        async with trio.open_nursery() as nursery:
            for index, script in enumerate(scripts):
                nursery.start_soon(limited, index, script)
    else:
        for index, script in enumerate(scripts):
            await run(index, script)


trio.run(main)
'''


def build(workspace: Path, fanout: int, chain: int) -> dict[str, tuple[str, Path]]:
    """The three DAGs and, for each, the pool's (mode, listing file) that runs the same scripts."""
    shapes: dict[str, tuple[str, int]] = {
        "fanout": ("fanout", fanout),
        "chain": ("chain", chain),
        "single": ("fanout", 1),
    }
    pool_inputs = {}
    for dag, (mode, count) in shapes.items():
        scripts = write_dag_of(
            workspace, dag, count, NOOP_SCRIPT, chain=dag == "chain", max_active_tasks=MAX_ACTIVE
        )
        listing = workspace / f"{dag}.list"
        listing.write_text("\n".join(map(str, scripts)) + "\n")
        pool_inputs[dag] = (mode, listing)
    (workspace / "pool.py").write_text(POOL_PROGRAM)
    (workspace / "floor.py").write_text(FLOOR_PROGRAM)
    return pool_inputs


def main() -> int:
    parser = common_args(__doc__.splitlines()[0])
    parser.add_argument("--no-floor", action="store_true", help="skip the bare-trio reference runs")
    args = parser.parse_args()
    fanout, chain = (100, 30) if args.quick else (500, 100)
    repeat = args.repeat or (2 if args.quick else 7)
    tmp = make_tmp("overhead", args)
    try:
        return _run(tmp, args, fanout, chain, repeat)
    finally:
        cleanup(tmp, args)


def _run(tmp: Path, args: argparse.Namespace, fanout: int, chain: int, repeat: int) -> int:
    workspace = tmp / "ws"
    env = child_env(tmp, pyc_cache=not args.no_pyc_cache)
    pool_inputs = build(workspace, fanout, chain)
    validate_workspace(workspace, env)
    runs_dir = workspace / "runs"

    def pit(dag: str) -> Measure:
        def measure() -> float:
            seconds = run_timed([*pit_argv(), "-C", str(workspace), "run", dag], env=env)
            shutil.rmtree(runs_dir, ignore_errors=True)  # each run starts from the same state
            return seconds

        return measure

    def pool(dag: str) -> Measure:
        mode, listing = pool_inputs[dag]
        return lambda: run_timed([PYTHON, str(workspace / "pool.py"), mode, str(listing)], env=env)

    def floor(dag: str, *, logs: bool) -> Measure:
        mode, listing = pool_inputs[dag]
        log_dir = tmp / "floor-logs"

        def measure() -> float:
            target = str(log_dir) if logs else "-"
            argv = [PYTHON, str(workspace / "floor.py"), mode, str(listing), target]
            seconds = run_timed(argv, env=env)
            shutil.rmtree(log_dir, ignore_errors=True)
            return seconds

        return measure

    sides = ["pit", "pool"] if args.no_floor else ["pit", "pool", "trio", "trio+logs"]
    factories: dict[str, Callable[[str], Measure]] = {
        "pit": pit,
        "pool": pool,
        "trio": lambda dag: floor(dag, logs=False),
        "trio+logs": lambda dag: floor(dag, logs=True),
    }
    measurements = {
        f"{side} {dag}": factories[side](dag)
        for side in sides
        for dag in ("fanout", "chain", "single")
    }
    print(
        f"overhead: fan-out of {fanout}, chain of {chain}, max_active_tasks {MAX_ACTIVE}, "
        f"{repeat} rounds",
        file=sys.stderr,
    )
    for measure in measurements.values():  # warm-up: byte-code cache, page cache
        measure()
    samples = rounds(measurements, repeat)
    med = {name: median(values) for name, values in samples.items()}

    report = Report("overhead", quick=args.quick)
    rows = []
    for shape, count in (("fanout", fanout), ("chain", chain)):
        marginal = {
            side: (med[f"{side} {shape}"] - med[f"{side} single"]) / (count - 1) for side in sides
        }
        for side in sides:
            rows.append(
                [
                    f"{side} {shape}",
                    count,
                    fmt_seconds(med[f"{side} {shape}"]),
                    spread(samples[f"{side} {shape}"]),
                    fmt_seconds(med[f"{side} single"]),
                    f"{marginal[side] * 1000:.2f}ms",
                    f"{marginal[side] / marginal['pool']:.2f}x",
                ]
            )
        report.check(
            f"{shape} marginal cost per task, pit / pool",
            marginal["pit"] / marginal["pool"],
            TARGET,
            detail=f"pit {marginal['pit'] * 1000:.2f}ms vs pool "
            f"{marginal['pool'] * 1000:.2f}ms per task",
        )
        if not args.no_floor:
            report.info.append(
                f"{shape}: bare trio {marginal['trio'] / marginal['pool']:.2f}x the pool, "
                f"trio+logs {marginal['trio+logs'] / marginal['pool']:.2f}x, pit "
                f"{marginal['pit'] / marginal['trio+logs']:.2f}x trio+logs "
                f"(+{(marginal['pit'] - marginal['trio+logs']) * 1000:.2f}ms per task)"
            )
    print()
    print(
        table(
            [
                "side shape",
                "N",
                "T(N) median",
                "T(N) min..max",
                "T(1) median",
                "(T(N)-T(1))/(N-1)",
                "x pool",
            ],
            rows,
        )
    )
    print(
        "T(1) min..max: "
        + ", ".join(f"{side} {spread(samples[f'{side} single'])}" for side in sides)
    )
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
