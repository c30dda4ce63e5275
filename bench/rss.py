"""Peak memory (RSS) of the `pit run` process on a 500-task fan-out (100 with --quick).

The DAG: N no-op `.sh` tasks without dependencies, `max_active_tasks = 2`.

How pit's own peak is measured: the figure must exclude the tasks' processes (bash), which a
plain `getrusage(RUSAGE_CHILDREN)` in a parent would fold in. So a fresh Python child runs pit's
real entry point (`pit.cli.main:main`, exactly what the `pit` console script calls) in-process,
and in a `finally` reads its own `VmHWM` from /proc/self/status: the kernel's high-water mark of
this process's resident set, for its whole life, its children never counted. The wrapper adds
nothing to pit's memory but a few lines of code (the console script is a Python process that
imports the same module). It writes the figure to a file the benchmark reads.

Cross-check: the benchmark also starts the real `pit` console script and reaps it with
`os.wait4`, whose `ru_maxrss` is the largest peak of that process and of any descendant it
reaped: an upper bound on pit's own peak (tasks are a few MB of bash, so it should match).

For scale, the same is measured for pit on a 1-task DAG and for `python -c "import trio, attrs,
typer"`. Medians over a few rounds (RSS is steady; the rounds catch outliers).

Target: pit's peak RSS on the N-task fan-out <= 80 MB (MiB here: 1 MiB = 1024 KiB, which is the
stricter reading).

`--trace` also runs the fan-out once under tracemalloc and prints where Python objects were
allocated at their peak (pit runs slower under it; the figures above are taken without it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from _harness import (
    NOOP_SCRIPT,
    PYTHON,
    Report,
    child_env,
    cleanup,
    common_args,
    make_tmp,
    median,
    pit_argv,
    table,
    validate_workspace,
    write_dag_of,
)

TARGET_MIB = 80.0
MAX_ACTIVE = 2

WRAPPER = '''\
"""Run pit in this process and record this process's own peak RSS (VmHWM) when it ends."""
import sys

TRACE = sys.argv[1] == "trace"
RESULT = sys.argv[2]
sys.argv = ["pit", *sys.argv[3:]]
if TRACE:
    import tracemalloc

    tracemalloc.start(1)


def own_peak_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


code = 0
try:
    from pit.cli.main import main

    main()
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else 1
finally:
    with open(RESULT, "w") as out:
        out.write(f"{own_peak_kib()}\\n")
        if TRACE:
            current, peak = tracemalloc.get_traced_memory()
            out.write(f"tracemalloc: {current / 2**20:.1f} MiB now, {peak / 2**20:.1f} MiB peak\\n")
            snapshot = tracemalloc.take_snapshot()
            out.write("still allocated at exit, by the file that allocated it:\\n")
            for stat in snapshot.statistics("filename")[:12]:
                out.write(f"  {stat.size / 2**20:6.2f} MiB in {stat.count:6d} blocks  "
                          f"{stat.traceback[0].filename}\\n")
sys.exit(code)
'''


def main() -> int:
    parser = common_args(__doc__.splitlines()[0])
    parser.add_argument("--trace", action="store_true", help="also show tracemalloc's top sites")
    args = parser.parse_args()
    count = 100 if args.quick else 500
    repeat = args.repeat or (2 if args.quick else 3)
    tmp = make_tmp("rss", args)
    try:
        return _run(tmp, args, count, repeat)
    finally:
        cleanup(tmp, args)


def _run(tmp: Path, args: argparse.Namespace, count: int, repeat: int) -> int:
    env = child_env(tmp, pyc_cache=not args.no_pyc_cache)
    workspace = tmp / "ws"
    for dag, n in (("fanout", count), ("single", 1)):
        write_dag_of(workspace, dag, n, NOOP_SCRIPT, chain=False, max_active_tasks=MAX_ACTIVE)
    validate_workspace(workspace, env)
    wrapper = tmp / "pit_peak.py"
    wrapper.write_text(WRAPPER)
    result = tmp / "peak.txt"
    runs_dir = workspace / "runs"

    def own_peak(dag: str, mode: str = "plain") -> tuple[float, str]:
        argv = [PYTHON, str(wrapper), mode, str(result), "-C", str(workspace), "run", dag]
        _run_checked(argv, env)
        shutil.rmtree(runs_dir, ignore_errors=True)
        first, *rest = result.read_text().splitlines()
        return int(first) / 1024, "\n".join(rest)

    def reaped_peak(argv: Sequence[str]) -> float:
        peak = _wait4_maxrss_kib(argv, env) / 1024
        shutil.rmtree(runs_dir, ignore_errors=True)
        return peak

    pit_run = [*pit_argv(), "-C", str(workspace), "run"]
    rows: dict[str, list[float]] = {
        f"pit run fanout ({count} tasks), own VmHWM": [],
        f"pit run fanout ({count} tasks), wait4 ru_maxrss": [],
        "pit run single (1 task), own VmHWM": [],
        "pit run single (1 task), wait4 ru_maxrss": [],
        "python -c 'import trio, attrs, typer', wait4 ru_maxrss": [],
    }
    names = list(rows)
    print(
        f"rss: fan-out of {count}, max_active_tasks {MAX_ACTIVE}, {repeat} rounds", file=sys.stderr
    )
    own_peak("single")  # warm-up: byte-code cache
    for index in range(repeat):
        rows[names[0]].append(own_peak("fanout")[0])
        rows[names[1]].append(reaped_peak([*pit_run, "fanout"]))
        rows[names[2]].append(own_peak("single")[0])
        rows[names[3]].append(reaped_peak([*pit_run, "single"]))
        rows[names[4]].append(reaped_peak([PYTHON, "-c", "import trio, attrs, typer"]))
        print(
            f"  round {index + 1}/{repeat}: "
            + ", ".join(f"{rows[n][-1]:.1f}" for n in names)
            + " MiB",
            file=sys.stderr,
        )
    print()
    print(
        table(
            ["process", "peak RSS median", "min..max"],
            [
                [name, f"{median(v):.1f} MiB", f"{min(v):.1f}..{max(v):.1f} MiB"]
                for name, v in rows.items()
            ],
        )
    )
    fanout, single = median(rows[names[0]]), median(rows[names[2]])
    print(
        f"growth from 1 to {count} tasks: {fanout - single:.1f} MiB "
        f"({(fanout - single) * 1024 / (count - 1):.1f} KiB per task)"
    )
    if args.trace:
        _, trace = own_peak("fanout", "trace")
        print(f"\ntracemalloc, pit run fanout ({count} tasks), at the end of the run:\n{trace}")
    report = Report("rss", quick=args.quick)
    report.check(
        f"pit run peak RSS, {count}-task fan-out",
        fanout,
        TARGET_MIB,
        unit=" MiB",
        detail=f"1-task run {single:.1f} MiB; wait4 cross-check {median(rows[names[1]]):.1f} MiB",
    )
    return report.finish(args.json)


def _run_checked(argv: Sequence[str], env: Mapping[str, str]) -> None:
    done = subprocess.run(
        list(argv),
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(argv)}\n{done.stderr.decode()}")


def _wait4_maxrss_kib(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Start `argv` and reap it with wait4: ru_maxrss covers it and what it reaped (in KiB)."""
    process = subprocess.Popen(
        list(argv),
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)  # already reaped: tell Popen
    if process.returncode != 0:
        raise SystemExit(f"failed ({process.returncode}): {' '.join(argv)}")
    return usage.ru_maxrss


if __name__ == "__main__":
    sys.exit(main())
