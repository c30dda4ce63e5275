"""Run every pit benchmark, one after the other, and print a summary of their targets.

    uv run python bench/run_all.py            # the full runs (several minutes)
    uv run python bench/run_all.py --quick    # smoke versions
    uv run python bench/run_all.py --only startup,rss

Each benchmark runs as its own process (never two at once: they would disturb each other's
timings) and writes its results as JSON for the summary. Exit code 1 if any target failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCHMARKS = (
    "overhead",
    "startup",
    "logs",
    "rss",
    "store",
    "status",
    "broker",
    "secrets",
    "backfill",
    "load",
    "serve",
    "api",
    "pools",
    "dask",
    "dashboard",
)
HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller, faster smoke versions")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated subset")
    parser.add_argument("--no-pyc-cache", action="store_true", help="passed to each benchmark")
    parser.add_argument("--tmp-dir", default=None, help="passed to each benchmark")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {BENCHMARKS}")
    flags = ["--quick"] if args.quick else []
    if args.no_pyc_cache:
        flags.append("--no-pyc-cache")
    if args.tmp_dir:
        flags += ["--tmp-dir", args.tmp_dir]

    results = []
    crashed = []
    with tempfile.TemporaryDirectory(prefix="pit-bench-results-") as results_dir:
        for name in chosen:
            result_file = Path(results_dir) / f"{name}.json"
            print(f"\n===== {name} =====", flush=True)
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, str(HERE / f"{name}.py"), *flags, "--json", str(result_file)],
                check=False,
            )
            took = time.perf_counter() - started
            if result_file.is_file():
                results.append((json.loads(result_file.read_text()), took))
            else:
                crashed.append(f"{name} (exit code {done.returncode}, no results)")

    print("\n===== summary =====")
    failed = bool(crashed)
    for result, _ in results:
        for line in result["info"]:
            print(f"info  {result['benchmark']}: {line}")
    for result, _ in results:
        for check in result["checks"]:
            verdict = "PASS" if check["passed"] else "FAIL"
            failed = failed or not check["passed"]
            print(
                f"{verdict}  {check['benchmark']}: {check['name']}: {check['value']:.2f}"
                f"{check['unit']} (target <= {check['limit']:g}{check['unit']})"
            )
    for line in crashed:
        print(f"ERROR {line}")
    timing = ", ".join(f"{r['benchmark']} {took:.0f}s" for r, took in results)
    print(f"({'quick' if args.quick else 'full'} runs: {timing}; pit at {_revision()})")
    return 1 if failed else 0


def _revision() -> str:
    """The commit measured, and whether the work tree had changes (others edit concurrently)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(HERE.parent), "status", "--porcelain", "--", "pit"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown revision"
    return f"{head}{' with uncommitted changes in pit/' if dirty else ''}"


if __name__ == "__main__":
    sys.exit(main())
