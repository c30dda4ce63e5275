"""What the benchmarks share: how to start pit, how to time a process, and how to report.

Not a benchmark itself. Each `bench/<name>.py` imports it (its own folder is on `sys.path` when run
as `uv run python bench/<name>.py`), builds its workspace in a temporary folder and prints a table
and one verdict line per target.

Byte-code: this machine's environment sets PYTHONDONTWRITEBYTECODE=1, so without care every Python
child would recompile pit, trio, attrs and typer from source on each start, which roughly doubles
start-up and is not what an installed pit does. Children therefore get PYTHONPYCACHEPREFIX pointing
into the benchmark's temporary folder (nothing is written into the source tree or the venv) and a
warm-up run fills it. `--no-pyc-cache` keeps the environment exactly as it is instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

PYTHON = sys.executable
"""The interpreter of the uv venv: pit's own, and the baselines' too."""


Measure = Callable[[], float]
"""One timed measurement: runs something once and returns its wall seconds."""


def pit_argv(python: str = PYTHON) -> list[str]:
    """How a user starts pit: the `pit` console script installed next to the interpreter
    (`python`: this venv's by default, or another environment's, e.g. startup.py's fresh one)."""
    script = Path(python).parent / "pit"
    if script.is_file():
        return [str(script)]
    return [python, "-c", "import sys; from pit.cli.main import main; sys.exit(main())"]


def child_env(tmp: Path, *, pyc_cache: bool) -> dict[str, str]:
    """The environment of every timed child (see the module docstring on byte-code)."""
    env = dict(os.environ)
    if pyc_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    return env


def common_args(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="smaller, faster smoke version")
    parser.add_argument("--repeat", type=int, default=None, help="rounds (default per benchmark)")
    parser.add_argument(
        "--no-pyc-cache",
        action="store_true",
        help="do not give children a byte-code cache (keep PYTHONDONTWRITEBYTECODE as set)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    parser.add_argument(
        "--tmp-dir",
        type=Path,
        default=None,
        help="where to build the workspace (default: the system temp folder, $TMPDIR)",
    )
    return parser


def make_tmp(name: str, args: argparse.Namespace) -> Path:
    """The benchmark's own temporary folder, holding its workspace(s) and the byte-code cache."""
    if args.tmp_dir is not None:
        args.tmp_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"pit-bench-{name}-", dir=args.tmp_dir))


def cleanup(tmp: Path, args: argparse.Namespace) -> None:
    if args.keep:
        print(f"workspace kept in {tmp}", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def run_timed(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    stdout: int | Path = subprocess.DEVNULL,
    check: bool = True,
) -> float:
    """Wall seconds of one whole child process. stdout goes to DEVNULL (or a file), never a TTY,
    so pit shows its plain view; stderr is captured and shown if the child fails."""
    with contextlib.ExitStack() as stack:
        target: int | BinaryIO = (
            stack.enter_context(stdout.open("wb")) if isinstance(stdout, Path) else stdout
        )
        started = time.perf_counter()
        done = subprocess.run(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=target,
            stderr=subprocess.PIPE,
            check=False,
        )
        elapsed = time.perf_counter() - started
    if check and done.returncode != 0:
        raise SystemExit(
            f"benchmark child failed ({done.returncode}): {' '.join(argv)}\n"
            + done.stderr.decode(errors="replace")
        )
    return elapsed


def run_wait4(argv: Sequence[str], env: Mapping[str, str]) -> tuple[float, resource.struct_rusage]:
    """Run `argv` (it must exit 0, else the benchmark stops with its stderr), reaped with
    os.wait4: its wall seconds and its resource use (the process and what it reaped)."""
    with tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)  # already reaped: tell Popen
        if process.returncode != 0:
            stderr.seek(0)
            raise SystemExit(
                f"benchmark child failed ({process.returncode}): {' '.join(argv)}\n"
                + stderr.read().decode(errors="replace")
            )
    return seconds, usage


def rounds(
    measurements: Mapping[str, Measure], repeat: int, *, label: str = ""
) -> dict[str, list[float]]:
    """Run every measurement once per round, rotating their order each round so that no side
    always runs first (or right after the same neighbour) on a noisy machine."""
    names = list(measurements)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for index in range(repeat):
        shift = index % len(names)
        order = names[shift:] + names[:shift]
        for name in order:
            samples[name].append(measurements[name]())
        progress = ", ".join(f"{n} {_fmt_seconds(samples[n][-1])}" for n in names)
        print(f"  {label}round {index + 1}/{repeat}: {progress}", file=sys.stderr, flush=True)
    return samples


def warmed_rounds(
    measurements: Mapping[str, Measure], repeat: int
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """One untimed warm-up of each (the byte-code and page caches), then `rounds`: the samples
    and their medians."""
    for once in measurements.values():
        once()
    samples = rounds(measurements, repeat)
    return samples, {name: median(values) for name, values in samples.items()}


def medians_table(title: str, samples: Mapping[str, Sequence[float]]) -> str:
    """Each measurement's median and spread, under `title`."""
    rows = [[name, fmt_seconds(median(values)), spread(values)] for name, values in samples.items()]
    return table([title, "median", "min..max"], rows)


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def spread(values: Sequence[float]) -> str:
    """min..max, to show how noisy a median is."""
    return f"{_fmt_seconds(min(values))}..{_fmt_seconds(max(values))}"


def _fmt_seconds(seconds: float) -> str:
    if abs(seconds) < 1:
        return f"{seconds * 1000:.1f}ms"
    return f"{seconds:.2f}s"


fmt_seconds = _fmt_seconds


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


@dataclass
class Check:
    """One target: `value` (a ratio, or an absolute figure) against `limit`; lower is better."""

    benchmark: str
    name: str
    value: float
    limit: float
    unit: str
    """"x" for a ratio against the baseline, else the unit of an absolute figure (e.g. "MB")."""
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.value <= self.limit

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        detail = f"  ({self.detail})" if self.detail else ""
        return (
            f"{verdict}  {self.benchmark}: {self.name}: {self.value:.2f}{self.unit} "
            f"(target <= {self.limit:g}{self.unit}){detail}"
        )


@dataclass
class Report:
    benchmark: str
    quick: bool
    checks: list[Check] = field(default_factory=list)
    info: list[str] = field(default_factory=list)
    """Figures reported without a target (e.g. verbose mode)."""

    def check(
        self, name: str, value: float, limit: float, unit: str = "x", detail: str = ""
    ) -> None:
        self.checks.append(Check(self.benchmark, name, value, limit, unit, detail))

    def finish(self, json_path: Path | None) -> int:
        print()
        for line in self.info:
            print(f"info  {self.benchmark}: {line}")
        for check in self.checks:
            print(check.line())
        if self.quick:
            print("(--quick: a smoke run; the targets are meant for the full run)")
        if json_path is not None:
            json_path.write_text(
                json.dumps(
                    {
                        "benchmark": self.benchmark,
                        "quick": self.quick,
                        "info": self.info,
                        "checks": [asdict(c) | {"passed": c.passed} for c in self.checks],
                    },
                    indent=1,
                )
            )
        return 0 if all(c.passed for c in self.checks) else 1


# --- workspaces ------------------------------------------------------------------------------

NOOP_SCRIPT = "#!/usr/bin/env bash\n:\n"


def toml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid TOML basic string for these names


@dataclass
class TaskDef:
    name: str
    script: str
    """Path relative to the project folder."""
    depends_on: Sequence[str] = ()
    runner: str | None = None
    """`runner` in pit.toml (e.g. "$ true": the task's command is `true <script>`)."""


def write_project(
    workspace: Path,
    folder: str,
    *,
    dag: str,
    tasks: Sequence[TaskDef],
    scripts: Mapping[str, str],
    max_active_tasks: int | None = None,
    schedule: str | None = None,
    timeout: str | None = None,
) -> Path:
    """Write `projects/<folder>/pit.toml` and its script files; return the project folder."""
    project = workspace / "projects" / folder
    project.mkdir(parents=True, exist_ok=True)
    lines = ["[dag]", f"name = {toml_string(dag)}"]
    if schedule is not None:
        lines.append(f"schedule = {toml_string(schedule)}")
    if timeout is not None:
        lines.append(f"timeout = {toml_string(timeout)}")
    if max_active_tasks is not None:
        lines.append(f"max_active_tasks = {max_active_tasks}")
    for task in tasks:
        lines += ["", "[[tasks]]", f"name = {toml_string(task.name)}"]
        lines.append(f"script = {toml_string(task.script)}")
        if task.runner is not None:
            lines.append(f"runner = {toml_string(task.runner)}")
        if task.depends_on:
            deps = ", ".join(toml_string(d) for d in task.depends_on)
            lines.append(f"depends_on = [{deps}]")
    (project / "pit.toml").write_text("\n".join(lines) + "\n")
    for path, text in scripts.items():
        file = project / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
        file.chmod(0o755)
    return project


def validate_workspace(
    workspace: Path, env: Mapping[str, str], pit: Sequence[str] | None = None
) -> None:
    """Fail early, with pit's own words, if a generated workspace is not valid. `pit`: how to
    start pit (default: `pit_argv()`)."""
    done = subprocess.run(
        [*(pit_argv() if pit is None else pit), "-C", str(workspace), "validate"],
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"generated workspace is invalid:\n{done.stdout}{done.stderr}")


# --- baselines -------------------------------------------------------------------------------

LOGGED_POOL_PROGRAM = '''\
"""Baseline: run the listed scripts with bash, WORKERS at a time, each task's stdout and stderr
to its own log file in LOG_DIR (which this creates), as pit keeps a log per task.

usage: python logged_pool.py LISTING LOG_DIR WORKERS
"""
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

listing, log_dir, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(listing) as file:
    scripts = file.read().split()
os.mkdir(log_dir)


def run(item):
    index, script = item
    with open(os.path.join(log_dir, f"{index}.log"), "wb") as log:
        subprocess.run(
            ["bash", script], stdin=subprocess.DEVNULL, stdout=log, stderr=log, check=True
        )


with ThreadPoolExecutor(workers) as pool:
    list(pool.map(run, enumerate(scripts)))
'''
"""A bare pool that keeps a log file per task: subprocess.run (Popen + wait) on a thread pool,
the way `overhead.py`'s `pool.py` runs scripts, plus the log files. Write it to a file and run it
with the interpreter under test."""


def write_dag_of(
    workspace: Path, dag: str, count: int, script: str, *, chain: bool, max_active_tasks: int
) -> list[Path]:
    """A project of `count` tasks running `script` (each its own copy), independent or each
    depending on the one before (`chain`); returns the scripts' paths in task order."""
    names = [f"t{i:04d}" for i in range(count)]
    tasks = [
        TaskDef(name, f"tasks/{name}.sh", (names[i - 1],) if chain and i > 0 else ())
        for i, name in enumerate(names)
    ]
    project = write_project(
        workspace,
        dag,
        dag=dag,
        tasks=tasks,
        scripts={task.script: script for task in tasks},
        max_active_tasks=max_active_tasks,
    )
    return [project / task.script for task in tasks]
