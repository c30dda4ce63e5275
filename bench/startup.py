"""Start-up, per-task cost and memory of `pit` as a user gets it, against baselines (issue 10).

Where pit comes from (default): the working tree's pyproject.toml, uv.lock, README.md, pit/ and
sdk/ (what hatch builds from; uncommitted changes included, no __pycache__) are copied into the
temporary folder and `uv sync --frozen --no-dev --no-editable --compile-bytecode` (offline first,
online if that fails) makes the copy's `.venv`: the install the README gives for where pit runs
(a server, a container), pit and its dependencies compiled to byte-code, as pip compiles what it
installs (and Luigi's install below). `--editable` makes a developer's checkout instead (`uv sync
--frozen`: nothing compiled, pit editable). Every timed command runs with PYTHONDONTWRITEBYTECODE=1
and no PYTHONPYCACHEPREFIX: only what the install compiled is cached. The baselines use that
venv's interpreter, same environment. `--this-venv` measures the current venv instead, with the
byte-code cache trick of bench/_harness.py (`--no-pyc-cache` turns that off).

Workspaces (generated; every task is a `.sh` file `#!/bin/sh\\ntrue`, which pit runs with bash;
DAGs have `max_active_tasks = 2`; each DAG in a workspace of its own, so no run parses another):
  one:          1 task;   chain50: 50 tasks, each depending on the one before;
  fanout200:    200 independent tasks;   fanoutN: N = 1000 (200 with --quick) independent tasks;
  reads:        the 1-task DAG with two [[outputs]] and 3 finished runs, for the read commands;
  validate:     100 projects, each a pit.toml of 4 tasks with dependencies, a cron schedule, a
                timeout and its script files.

Targets (each a ratio of medians measured in the same rounds, or an absolute figure):
  1. `pit -C one run one` <= 1.5x `python -c "import trio"`, and <= Luigi 3.8.1 running the same
     1-task DAG: a Luigi task that runs the same script (`bash <script>` in a subprocess) and
     then writes its output marker, `luigi --module pipeline One --local-scheduler` (lock folder
     in the temporary folder; the marker is checked after every run). Luigi gets its own venv in
     the temporary folder (`uv venv` + `uv pip install`, compiled like a pip install); if it
     cannot be installed its comparison is skipped with an `info` line.
  2. `pit --help`, `pit -C reads logs one --list` and `pit -C reads outputs` each <= 2x
     `python -c "import attrs"`; `pit -C validate validate` (100 projects) <= 3x.
  3. Marginal cost per task on the fan-out, (T(N) - T(1)) / (N - 1), pit <= 1.25x a bare
     logged pool: `logged_pool.py` (bench/_harness.py), `subprocess.run(["bash", script])` on a
     ThreadPoolExecutor(2), each task's stdout and stderr to its own log file, on the same script
     files, timed the same way at 1 and N tasks.
  4. Peak RSS of `pit run` on the N-task fan-out <= 40 MiB: the `VmHWM` of pit's own process
     (its tasks not counted), read in-process by a wrapper that runs the real console script
     with runpy (as bench/rss.py does); the timed runs' `os.wait4` ru_maxrss (pit and the tasks
     it reaped: an upper bound) is shown as a cross-check.

Every command is a whole process, timed by wall clock, stdout to DEVNULL (pit's plain view), in
rounds with a rotating order after one untimed warm-up of each; figures are medians. `python -c
pass` is shown for scale. Also printed: pit's row of the issue's table (1 task, chain 50, fan-out
200, fan-out 1000: seconds, medians; peak RSS).

`--explain` also runs the pit commands and the baselines once under `python -X importtime` and
lists their biggest top-level imports (byte-compiling included, where nothing is cached).
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from _harness import (
    LOGGED_POOL_PROGRAM,
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
    run_timed,
    run_wait4,
    spread,
    table,
    validate_workspace,
    warmed_rounds,
    write_dag_of,
    write_project,
)

SOURCE = Path(__file__).resolve().parents[1]
BUILD_FILES = ("pyproject.toml", "uv.lock", "README.md", "pit", "sdk")
"""What `uv sync` needs to install pit (hatch: packages = ["pit"], force-include of sdk/)."""

LUIGI = "luigi==3.8.1"
PROJECTS = 100
MAX_ACTIVE = 2
TRUE_SCRIPT = "#!/bin/sh\ntrue\n"

RUN_VS_TRIO = 1.5
RUN_VS_LUIGI = 1.0
READ_VS_ATTRS = 2.0
VALIDATE_VS_ATTRS = 3.0
MARGINAL_VS_POOL = 1.25
PEAK_RSS_MIB = 40.0

PYTHON_TASK = 'print("transformed")\n'
SQL_TASK = "select 1;\n"
OUTPUTS = """
[[outputs]]
name = "report"
type = "file"
location = "data/report.txt"

[[outputs]]
name = "sales"
type = "table"
location = "warehouse.main.sales"
"""

LUIGI_PIPELINE = '''\
"""The Luigi side: one task that runs the same script as pit's 1-task DAG, then its marker."""
import subprocess

import luigi

SCRIPT = {script!r}
MARKER = {marker!r}


class One(luigi.Task):
    def output(self):
        return luigi.LocalTarget(MARKER)

    def run(self):
        subprocess.run(["bash", SCRIPT], stdin=subprocess.DEVNULL, check=True)
        with self.output().open("w") as marker:
            marker.write("done\\n")
'''

PEAK_WRAPPER = '''\
"""Run a console script in this process, then write this process's own peak RSS (VmHWM, KiB).

usage: python peak.py RESULT SCRIPT ARGS...
"""
import runpy
import sys

result, script = sys.argv[1], sys.argv[2]
sys.argv = [script, *sys.argv[3:]]
code = 0
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
finally:
    with open("/proc/self/status") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(result, "w") as out:
        out.write(peak + "\\n")
sys.exit(code)
'''


# --- where pit comes from --------------------------------------------------------------------


@dataclass
class Install:
    """The pit under test: its interpreter (the baselines' too), how it starts, its environment."""

    python: str
    pit: list[str]
    env: dict[str, str]
    notes: list[str]


def user_env() -> dict[str, str]:
    """A user's shell here: this environment without what `uv run` or the harness added, with
    PYTHONDONTWRITEBYTECODE=1 (as issue 10 asks)."""
    drop = {"PYTHONPYCACHEPREFIX", "VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "UV_COMPILE_BYTECODE"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def uv_binary() -> str:
    found = os.environ.get("UV") or shutil.which("uv")
    if found is None:
        raise SystemExit("startup: uv not found (PATH, or $UV); --this-venv works without it")
    return found


def uv_offline_first(args: Sequence[str], env: Mapping[str, str], cwd: Path | None = None) -> str:
    """Run `uv ARGS --offline`, then `uv ARGS` if that fails; return how it went ("offline",
    "online") or raise RuntimeError with uv's words."""
    for extra, how in ((["--offline"], "offline"), ([], "online")):
        done = subprocess.run(
            [uv_binary(), *args, *extra],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0:
            return how
    raise RuntimeError(f"uv {' '.join(args)} failed:\n{done.stdout}{done.stderr}")


def copy_project(destination: Path) -> None:
    """The working tree's build inputs (uncommitted changes included), without byte-code."""
    destination.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".venv", "*.egg-info")
    for name in BUILD_FILES:
        source = SOURCE / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=ignore)
        else:
            shutil.copy2(source, destination / name)


def compiled_share(venv: Path) -> str:
    """How much of site-packages has byte-code next to it, e.g. "4484 .pyc for 4484 .py"."""
    site = glob.glob(str(venv / "lib" / "python3*" / "site-packages"))[0]
    sources = compiled = 0
    for folder, _dirs, files in os.walk(site):
        if os.path.basename(folder) == "__pycache__":
            compiled += sum(name.endswith(".pyc") for name in files)
        else:
            sources += sum(name.endswith(".py") for name in files)
    return f"{compiled} .pyc for {sources} .py"


DEPLOY_SYNC = ("sync", "--frozen", "--no-dev", "--no-editable", "--compile-bytecode")
"""The README's install where pit runs."""
CHECKOUT_SYNC = ("sync", "--frozen")
"""A developer's checkout (`--editable`)."""


def user_install(tmp: Path, *, editable: bool) -> Install:
    """A copy of the project and `uv sync` in it: pit as a user gets it."""
    project = tmp / "pit-install"
    copy_project(project)
    env = user_env()
    sync = CHECKOUT_SYNC if editable else DEPLOY_SYNC
    print(f"startup: uv {' '.join(sync)} in a copy ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    try:
        how = uv_offline_first([*sync, "--quiet"], env, cwd=project)
    except RuntimeError as error:
        raise SystemExit(f"startup: could not install pit: {error}") from None
    seconds = time.perf_counter() - started
    venv = project / ".venv"
    python = str(venv / "bin" / "python")
    return Install(
        python=python,
        pit=pit_argv(python),
        env=env,
        notes=[
            f"pit as a user gets it: `uv {' '.join(sync)}` ({how}, {seconds:.1f}s) in a copy "
            f"of the working tree; PYTHONDONTWRITEBYTECODE=1; site-packages: "
            f"{compiled_share(venv)}" + ("; pit itself editable, not compiled" if editable else ""),
        ],
    )


def this_venv(tmp: Path, *, pyc_cache: bool) -> Install:
    cache = "byte-code cache in the temporary folder" if pyc_cache else "environment as it is"
    return Install(
        python=PYTHON,
        pit=pit_argv(),
        env=child_env(tmp, pyc_cache=pyc_cache),
        notes=[f"--this-venv: pit of {Path(PYTHON).parent.parent} ({cache})"],
    )


def install_luigi(tmp: Path, python: str, env: Mapping[str, str]) -> tuple[Path | None, str]:
    """Luigi in a venv of its own, compiled like a pip install: (its `luigi` script, a note)."""
    venv = tmp / "luigi-venv"
    install_env = dict(env, UV_COMPILE_BYTECODE="1")
    try:
        uv_offline_first(["venv", "--quiet", "--python", python, str(venv)], install_env)
        how = uv_offline_first(
            ["pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), LUIGI],
            install_env,
        )
    except (RuntimeError, SystemExit) as error:
        first = str(error).strip().splitlines()[-1].strip() if str(error).strip() else repr(error)
        return None, f"Luigi could not be installed, its comparison is skipped: {first}"
    return venv / "bin" / "luigi", f"{LUIGI} in its own venv ({how}), compiled at install"


# --- workspaces ------------------------------------------------------------------------------


def build_dag(workspace: Path, dag: str, count: int, *, chain: bool = False) -> list[Path]:
    """A workspace holding one DAG of `count` `true` tasks; returns their script files."""
    return write_dag_of(
        workspace, dag, count, TRUE_SCRIPT, chain=chain, max_active_tasks=MAX_ACTIVE
    )


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


def build_reads_workspace(workspace: Path, install: Install) -> None:
    """The 1-task DAG with declared outputs and three finished runs (for `logs --list`)."""
    build_dag(workspace, "one", 1)
    with (workspace / "projects" / "one" / "pit.toml").open("a") as pit_toml:
        pit_toml.write(OUTPUTS)
    for _ in range(3):
        run_timed([*install.pit, "-C", str(workspace), "run", "one"], env=install.env)


def build_luigi(folder: Path, script: Path) -> tuple[Path, Path]:
    """Luigi's module for the 1-task DAG: (the folder to import it from, its marker file)."""
    folder.mkdir(parents=True)
    marker = folder / "one.done"
    (folder / "pipeline.py").write_text(
        LUIGI_PIPELINE.format(script=str(script), marker=str(marker))
    )
    return folder, marker


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Timed:
    """One whole process, wall clock; `after` (cleaning up, checking) runs outside the timing."""

    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path | None = None
    after: Callable[[], None] | None = None

    def __call__(self) -> float:
        seconds = run_timed(self.argv, env=self.env, cwd=self.cwd)
        if self.after is not None:
            self.after()
        return seconds

    def instructions(self) -> int:
        """The instructions the process executes, counted by valgrind's callgrind (its child
        processes not counted): the same figure however busy the machine is."""
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *self.argv],
            env=dict(self.env),
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        if self.after is not None:
            self.after()
        found = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or found is None:
            raise SystemExit(f"startup: valgrind {self.argv[0]} failed:\n{done.stderr[-2000:]}")
        return int(found.group(1))


def timed(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    cwd: Path | None = None,
    after: Callable[[], None] | None = None,
) -> Timed:
    return Timed(argv, env, cwd, after)


def timed_wait4(
    argv: Sequence[str], env: Mapping[str, str], peaks_kib: list[int], after: Callable[[], None]
) -> Measure:
    """As `timed`, but reaped with os.wait4 to keep its ru_maxrss (the process and what it
    reaped) in `peaks_kib` (warm-up included)."""

    def once() -> float:
        seconds, usage = run_wait4(argv, env)
        peaks_kib.append(usage.ru_maxrss)
        after()
        return seconds

    return once


def own_peak_mib(tmp: Path, install: Install, workspace: Path, dag: str) -> float:
    """VmHWM of one `pit run` process, read by itself (tasks not counted), in MiB."""
    wrapper, result = tmp / "peak.py", tmp / "peak.txt"
    wrapper.write_text(PEAK_WRAPPER)
    script = install.pit[0]
    if len(install.pit) != 1:
        raise SystemExit(f"startup: no pit console script next to {install.python}")
    argv = [install.python, str(wrapper), str(result), script, "-C", str(workspace), "run", dag]
    run_timed(argv, env=install.env)
    shutil.rmtree(workspace / "runs", ignore_errors=True)
    return int(result.read_text()) / 1024


# --- the benchmark ---------------------------------------------------------------------------

PASS = "python -c pass"
ATTRS = 'python -c "import attrs"'
TRIO = 'python -c "import trio"'
HELP = "pit --help"
LOGS = "pit logs one --list"
OUTPUTS_CMD = "pit outputs"
VALIDATE = f"pit validate ({PROJECTS} projects)"
RUN_1 = "pit run: 1 task"
CHAIN_50 = "pit run: chain 50"
FANOUT_200 = "pit run: fan-out 200"
LUIGI_1 = "luigi: 1 task"
POOL_1 = "logged pool: 1 task"


def fanout_row(n: int) -> str:
    return f"pit run: fan-out {n}"


def pool_row(n: int) -> str:
    return f"logged pool: {n} tasks"


AGAINST = {HELP: ATTRS, LOGS: ATTRS, OUTPUTS_CMD: ATTRS, VALIDATE: ATTRS, RUN_1: TRIO}
AGAINST[LUIGI_1] = TRIO
"""The baseline each row is shown against in the table."""


@dataclass
class Workspaces:
    dags: dict[str, Path]
    """DAG name -> its workspace (the DAG is the only one in it)."""
    scripts: dict[str, list[Path]]
    validate: Path
    reads: Path


def build_workspaces(tmp: Path, install: Install, fanout: int) -> Workspaces:
    shapes = {"one": (1, False), "chain50": (50, True), "fanout200": (200, False)}
    shapes[f"fanout{fanout}"] = (fanout, False)  # --quick: the same as fanout200
    dags = {dag: tmp / f"ws-{dag}" for dag in shapes}
    scripts = {dag: build_dag(dags[dag], dag, n, chain=chain) for dag, (n, chain) in shapes.items()}
    found = Workspaces(dags, scripts, tmp / "ws-validate", tmp / "ws-reads")
    build_validate_workspace(found.validate, PROJECTS)
    for workspace in [*dags.values(), found.validate]:
        validate_workspace(workspace, install.env, pit=install.pit)
    build_reads_workspace(found.reads, install)
    return found


def pit_measurements(
    install: Install, ws: Workspaces, fanout: int, peaks_kib: list[int]
) -> dict[str, Measure]:
    """pit's commands, each a Measure; the fan-out's ru_maxrss values go to `peaks_kib`."""
    pit, env = install.pit, install.env

    def run(dag: str) -> list[str]:
        return [*pit, "-C", str(ws.dags[dag]), "run", dag]

    def clean(dag: str) -> Callable[[], None]:
        return lambda: shutil.rmtree(ws.dags[dag] / "runs", ignore_errors=True)

    big = f"fanout{fanout}"
    measurements = {
        HELP: timed([*pit, "--help"], env),
        LOGS: timed([*pit, "-C", str(ws.reads), "logs", "one", "--list"], env),
        OUTPUTS_CMD: timed([*pit, "-C", str(ws.reads), "outputs"], env),
        VALIDATE: timed([*pit, "-C", str(ws.validate), "validate"], env),
        RUN_1: timed(run("one"), env, after=clean("one")),
        CHAIN_50: timed(run("chain50"), env, after=clean("chain50")),
        FANOUT_200: timed(run("fanout200"), env, after=clean("fanout200")),
    }
    measurements[fanout_row(fanout)] = timed_wait4(run(big), env, peaks_kib, after=clean(big))
    return measurements


def interpreter_measurements(install: Install) -> dict[str, Measure]:
    """The baselines: the same interpreter starting and importing attrs or trio (and nothing)."""
    py, env = install.python, install.env
    return {
        PASS: timed([py, "-c", "pass"], env),
        ATTRS: timed([py, "-c", "import attrs"], env),
        TRIO: timed([py, "-c", "import trio"], env),
    }


def pool_measurements(
    tmp: Path, install: Install, ws: Workspaces, fanout: int
) -> dict[str, Measure]:
    """The logged pool on the scripts of the 1-task DAG and of the big fan-out."""
    pool = tmp / "logged_pool.py"
    pool.write_text(LOGGED_POOL_PROGRAM)
    logs_dir = tmp / "pool-logs"

    def logged_pool(dag: str) -> Measure:
        listing = tmp / f"{dag}.list"
        listing.write_text("\n".join(map(str, ws.scripts[dag])) + "\n")
        argv = [install.python, str(pool), str(listing), str(logs_dir), str(MAX_ACTIVE)]
        return timed(argv, install.env, after=lambda: shutil.rmtree(logs_dir))

    return {POOL_1: logged_pool("one"), pool_row(fanout): logged_pool(f"fanout{fanout}")}


def luigi_measurement(tmp: Path, install: Install, ws: Workspaces) -> tuple[Measure | None, str]:
    """Luigi's 1-task pipeline as a Measure (None if Luigi cannot be installed), and a note."""
    luigi, note = install_luigi(tmp, install.python, install.env)
    if luigi is None:
        return None, note
    folder, marker = build_luigi(tmp / "luigi", ws.scripts["one"][0])
    argv = [str(luigi), "--module", "pipeline", "One", "--local-scheduler"]
    argv += ["--lock-pid-dir", str(tmp / "luigi-lock")]

    def check_ran() -> None:
        if not marker.is_file():
            raise SystemExit("startup: luigi exited without running its task")
        marker.unlink()

    env = dict(install.env, PYTHONPATH=str(folder))
    return timed(argv, env, cwd=folder, after=check_ran), note


def main() -> int:
    parser = common_args(__doc__.splitlines()[0])
    parser.add_argument(
        "--explain", action="store_true", help="show the biggest imports (-X importtime)"
    )
    parser.add_argument(
        "--this-venv",
        action="store_true",
        help="measure this venv's pit (with the byte-code cache unless --no-pyc-cache) instead "
        "of a fresh `uv sync` of a copy of the project",
    )
    parser.add_argument(
        "--editable",
        action="store_true",
        help="install as a developer's checkout (`uv sync --frozen`: editable, nothing "
        "compiled) instead of the README's install where pit runs",
    )
    parser.add_argument("--no-luigi", action="store_true", help="skip the Luigi comparison")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also check the start-up targets in instructions executed (valgrind's callgrind)",
    )
    args = parser.parse_args()
    repeat = args.repeat or (3 if args.quick else 9)
    fanout = 200 if args.quick else 1000
    tmp = make_tmp("startup", args)
    try:
        return _run(tmp, args, repeat, fanout)
    finally:
        cleanup(tmp, args)


def _run(tmp: Path, args: argparse.Namespace, repeat: int, fanout: int) -> int:
    if args.this_venv:
        install = this_venv(tmp, pyc_cache=not args.no_pyc_cache)
    else:
        install = user_install(tmp, editable=args.editable)
    report = Report("startup", quick=args.quick)
    report.info += install.notes
    print("startup: building the workspaces ...", file=sys.stderr, flush=True)
    ws = build_workspaces(tmp, install, fanout)

    peaks_kib: list[int] = []
    measurements = interpreter_measurements(install)
    measurements |= pit_measurements(install, ws, fanout, peaks_kib)
    if not args.no_luigi:
        luigi, note = luigi_measurement(tmp, install, ws)
        report.info.append(note)
        if luigi is not None:
            measurements[LUIGI_1] = luigi
    measurements |= pool_measurements(tmp, install, ws, fanout)

    print(
        f"startup: {len(measurements)} commands, {repeat} rounds "
        f"(fan-out of {fanout}, max_active_tasks {MAX_ACTIVE})",
        file=sys.stderr,
        flush=True,
    )
    samples, med = warmed_rounds(measurements, repeat)

    print("startup: peak RSS ...", file=sys.stderr, flush=True)
    big = f"fanout{fanout}"
    own_peaks = [
        own_peak_mib(tmp, install, ws.dags[big], big) for _ in range(1 if args.quick else 3)
    ]
    peak = median(own_peaks)

    print_times(samples, med)
    pit_marginal, pool_marginal = print_marginal(med, fanout)
    print_issue_row(med, [RUN_1, CHAIN_50, FANOUT_200, fanout_row(fanout)], peak)

    def ratio(name: str, base: str, limit: float) -> None:
        report.check(
            f"{name} / {base}",
            med[name] / med[base],
            limit,
            detail=f"{fmt_seconds(med[name])} vs {fmt_seconds(med[base])}",
        )

    ratio(RUN_1, TRIO, RUN_VS_TRIO)
    if LUIGI_1 in med:
        ratio(RUN_1, LUIGI_1, RUN_VS_LUIGI)
    for name in (HELP, LOGS, OUTPUTS_CMD):
        ratio(name, ATTRS, READ_VS_ATTRS)
    ratio(VALIDATE, ATTRS, VALIDATE_VS_ATTRS)
    report.check(
        f"marginal cost per task, fan-out of {fanout}, pit / logged pool",
        pit_marginal / pool_marginal,
        MARGINAL_VS_POOL,
        detail=f"pit {pit_marginal * 1000:.2f}ms vs pool {pool_marginal * 1000:.2f}ms per task",
    )
    report.check(
        f"pit run peak RSS, fan-out of {fanout}",
        peak,
        PEAK_RSS_MIB,
        unit=" MiB",
        detail=f"own VmHWM, median of {len(own_peaks)}; cross-check: wait4 ru_maxrss of the "
        f"timed runs {median(peaks_kib) / 1024:.1f} MiB",
    )
    if args.instructions:
        check_instructions(report, measurements)
    if args.quick:
        report.info.append(f"--quick: fan-out of {fanout} (1000 in the full run), {repeat} rounds")
    if args.explain:
        explain_all(install, ws)
    return report.finish(args.json)


def check_instructions(report: Report, measurements: Mapping[str, Measure]) -> None:
    """The start-up targets again, in instructions executed (callgrind): a ratio that this
    machine's noise does not move, to tell a change of a few per cent from chance."""
    print("startup: counting instructions (valgrind) ...", file=sys.stderr, flush=True)
    names = [ATTRS, TRIO, HELP, LOGS, OUTPUTS_CMD, VALIDATE, RUN_1, LUIGI_1]
    counts = {}
    for name in names:
        measure = measurements.get(name)
        if isinstance(measure, Timed):
            counts[name] = measure.instructions()
    print("\ninstructions executed (callgrind; child processes not counted):")
    rows = [[name, f"{count / 1e6:.0f}M"] for name, count in counts.items()]
    print(table(["command", "instructions"], rows))
    targets = [(RUN_1, TRIO, RUN_VS_TRIO), (RUN_1, LUIGI_1, RUN_VS_LUIGI)]
    targets += [(name, ATTRS, READ_VS_ATTRS) for name in (HELP, LOGS, OUTPUTS_CMD)]
    targets.append((VALIDATE, ATTRS, VALIDATE_VS_ATTRS))
    for name, base, limit in targets:
        if name in counts and base in counts:
            report.check(f"{name} / {base}, instructions", counts[name] / counts[base], limit)


def print_times(samples: Mapping[str, Sequence[float]], med: Mapping[str, float]) -> None:
    rows = []
    for name in samples:
        base = AGAINST.get(name)
        shown = f"{med[name] / med[base]:.2f}x {base}" if base else ""
        rows.append([name, fmt_seconds(med[name]), spread(samples[name]), shown])
    print()
    print(table(["command", "median", "min..max", "ratio of medians"], rows))


def print_marginal(med: Mapping[str, float], fanout: int) -> tuple[float, float]:
    """The fan-out's marginal cost per task, (T(N) - T(1)) / (N - 1), of pit and of the pool."""
    sides = {"pit": (RUN_1, fanout_row(fanout)), "logged pool": (POOL_1, pool_row(fanout))}
    marginal = {side: (med[n] - med[one]) / (fanout - 1) for side, (one, n) in sides.items()}
    rows = [
        [
            side,
            fmt_seconds(med[one]),
            fmt_seconds(med[n]),
            f"{marginal[side] * 1000:.2f}ms",
            f"{marginal[side] / marginal['logged pool']:.2f}x",
        ]
        for side, (one, n) in sides.items()
    ]
    print(f"\nmarginal cost per task, fan-out of {fanout}, concurrency {MAX_ACTIVE}:")
    print(
        table(["side", "T(1)", f"T({fanout})", f"(T({fanout})-T(1))/{fanout - 1}", "x pool"], rows)
    )
    return marginal["pit"], marginal["logged pool"]


def print_issue_row(med: Mapping[str, float], shapes: Sequence[str], peak_mib: float) -> None:
    """pit's row of issue 10's table (seconds, medians), and Luigi's 1-task figure beside it."""
    columns = list(dict.fromkeys(shapes))  # --quick: the big fan-out is the 200 one
    headers = ["", *(c.removeprefix("pit run: ") for c in columns), "peak RSS"]
    rows = [["pit", *(f"{med[c]:.2f}" for c in columns), f"{peak_mib:.1f} MiB"]]
    if LUIGI_1 in med:
        rows.append(["luigi", f"{med[LUIGI_1]:.2f}", *("-" for _ in columns[1:]), "-"])
    print("\nissue 10's table (seconds, medians; peak RSS of the largest fan-out):")
    print(table(headers, rows))


def explain_all(install: Install, ws: Workspaces) -> None:
    py, pit = install.python, install.pit
    for name, argv in {
        ATTRS: [py, "-c", "import attrs"],
        TRIO: [py, "-c", "import trio"],
        HELP: [*pit, "--help"],
        RUN_1: [*pit, "-C", str(ws.dags["one"]), "run", "one"],
        VALIDATE: [*pit, "-C", str(ws.validate), "validate"],
    }.items():
        explain_imports(name, argv, install.env, py)
        shutil.rmtree(ws.dags["one"] / "runs", ignore_errors=True)


_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def explain_imports(
    name: str, argv: Sequence[str], env: Mapping[str, str], python: str, top: int = 10
) -> None:
    """Where one run of `argv` (a python program or console script) spends its imports: the
    biggest top-level imports (cumulative), and the packages by their own time summed over all
    their modules (so trio's time shows as trio's even when pit's modules import it)."""
    program = argv if argv[0] == python else [python, *argv]
    done = subprocess.run(
        [program[0], "-X", "importtime", *program[1:]],
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    top_level: list[tuple[int, str]] = []
    by_package: dict[str, int] = {}
    for line in done.stderr.splitlines():
        if match := _IMPORT_LINE.match(line):
            self_us, cumulative_us, indent, module = match.groups()
            if len(indent) == 1:  # a top-level import (importtime indents one space at the top)
                top_level.append((int(cumulative_us), module))
            package = module.split(".")[0]
            by_package[package] = by_package.get(package, 0) + int(self_us)
    total = sum(us for us, _ in top_level)
    print(f"\nimports of {name}: {total / 1000:.0f}ms in all (under -X importtime)")
    biggest = sorted(top_level, reverse=True)[:top]
    packages = sorted(((us, p) for p, us in by_package.items()), reverse=True)[:top]
    print(f"  {'top-level imports (cumulative)':<42}  by package (own time)")
    for index in range(max(len(biggest), len(packages))):
        left = right = ""
        if index < len(biggest):
            left = f"{biggest[index][0] / 1000:8.1f}ms  {biggest[index][1]}"
        if index < len(packages):
            right = f"{packages[index][0] / 1000:8.1f}ms  {packages[index][1]}"
        print(f"  {left:<42}  {right}")


if __name__ == "__main__":
    sys.exit(main())
