"""`pit serve` while 1,000 runs wait behind a pool of 3 slots: what the waiting costs.

Workspace (generated): `pit_config.toml` holding only `[pools]` `db = 3` (no `max_active_runs`,
so every run is admitted at once and its task waits for a slot of the pool, not for admission),
and one DAG, `hold` (`overlap = "allow"`, a yearly `schedule = "0 0 1 1 *"` so that pit serve has
something to serve), of one task, `pool = "db"`, whose script is `sleep 600`: the 3 slots stay
taken for the whole measurement.

`pit serve --port <free port>` (started as bench/serve.py starts it, after its untimed warm-up)
gets 1,000 runs (100 with --quick) by `POST /api/dags/hold/runs`, from 10 concurrent httpx
clients on trio in the benchmark's process (each answer must be 202; the time the posting took is
reported). The benchmark then waits until every run's run.json is there and says, over all of
them, exactly 3 tasks `running` and 997 `queued` in pool `db` (cross-checked by
`GET /api/runs?state=running` and, after the window, `pit status`'s pool line), lets pit settle
for 5 s (3 s with --quick), and measures a quiet window of 20 s (10 s with --quick): `utime +
stime` from /proc/<pid>/stat, before and after, of pit serve, of its executor process
(`python -m pit.cli.executor`, a child of pit serve in a session of its own) and of the
executor's run guard (`pit/cli/guard.py`, a child of the executor), divided by the window's wall
time; never the task processes (bash and `sleep`). Also read: each one's VmRSS and VmHWM
(/proc/<pid>/status), and the CPU of each 1 s slice of the window (to tell a steady cost from
one dying down). After the window the states must still be 3 running and the rest queued.

Then pit serve gets SIGTERM and, 2 s later, a second one (which stops the runs at once; the
first only starts the `shutdown_grace` of 60 s), and SIGKILL if it has not exited 120 s after
that. Every task process (found by its PIT_RUN_ID, one of the runs posted) must be gone within
15 s of pit serve's exit, and so must the executor and its guard; any left is reported and
killed by its pid. pit serve's output is searched for errors and tracebacks.

Target (the issue): "1,000 runs queued behind a pool of 3 cost `pit serve` < 5% of a core while
waiting": the CPU of pit serve + its executor (+ its guard) over the window < 5% of one core.
Also checked: no answer other than 202, no process left behind after pit serve stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trio
from _harness import (
    Report,
    child_env,
    cleanup,
    common_args,
    fmt_seconds,
    make_tmp,
    median,
    pit_argv,
    table,
    validate_workspace,
)
from serve import Server, new_workspace, read_run, start_pit, warm_up

CPU_TARGET_PERCENT = 5.0
DAG = "hold"
POOL, SLOTS = "db", 3
CLIENTS = 10
SLEEP = "sleep 600"
STATES_GUARD = 600.0
"""Seconds the posted runs get to reach 3 running and the rest queued (a hang, not slowness)."""
SECOND_SIGTERM_AFTER = 2.0
STOP_GUARD = 120.0
"""Seconds pit serve gets to exit after its second SIGTERM before it is killed."""
LEFTOVER_GUARD = 15.0
"""Seconds the executor, its guard and the tasks get to end after pit serve has exited."""
ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL|Traceback)\b")


def build_workspace(workspace: Path) -> None:
    new_workspace(workspace)  # projects/ and the secrets file serve.py's start_pit passes
    (workspace / "pit_config.toml").write_text(f"[pools]\n{POOL} = {SLOTS}\n")
    project = workspace / "projects" / DAG
    (project / "tasks").mkdir(parents=True)
    lines = [
        "[dag]",
        f'name = "{DAG}"',
        'overlap = "allow"',
        'schedule = "0 0 1 1 *"',
        'timezone = "UTC"',
        "",
        "[[tasks]]",
        'name = "wait"',
        'script = "tasks/wait.sh"',
        f'pool = "{POOL}"',
    ]
    (project / "pit.toml").write_text("\n".join(lines) + "\n")
    script = project / "tasks" / "wait.sh"
    script.write_text(f"#!/usr/bin/env bash\n{SLEEP}\n")
    script.chmod(0o755)


# --- processes -------------------------------------------------------------------------------


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError:  # gone meanwhile, or not ours to read
        return None


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _parent(pid: int) -> int | None:
    stat = _read(f"/proc/{pid}/stat")
    return None if stat is None else int(stat.rpartition(b")")[2].split()[1])


def _alive(pid: int) -> bool:
    stat = _read(f"/proc/{pid}/stat")
    return stat is not None and stat.rpartition(b")")[2].split()[0] != b"Z"


def _cmdline(pid: int) -> str:
    raw = _read(f"/proc/{pid}/cmdline") or b""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


@dataclass
class PitProcesses:
    """pit serve's process tree, sorted: pit's own processes (by role) and the tasks'."""

    serve: int
    executor: list[int] = field(default_factory=list)
    guard: list[int] = field(default_factory=list)
    tasks: list[int] = field(default_factory=list)

    @classmethod
    def scan(cls, serve: int) -> PitProcesses:
        children: dict[int, list[int]] = {}
        for pid in _pids():
            parent = _parent(pid)
            if parent is not None:
                children.setdefault(parent, []).append(pid)
        found = cls(serve)
        stack = list(children.get(serve, []))
        while stack:
            pid = stack.pop()
            stack += children.get(pid, [])
            if not _alive(pid):
                continue
            cmdline = _cmdline(pid)
            if "pit.cli.executor" in cmdline:
                found.executor.append(pid)
            elif "pit/cli/guard.py" in cmdline:
                found.guard.append(pid)
            else:
                found.tasks.append(pid)
        return found

    def roles(self) -> dict[str, list[int]]:
        return {"pit serve": [self.serve], "executor": self.executor, "guard": self.guard}


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of one process, in clock ticks (None if it is gone)."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat.rpartition(b")")[2].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)


def memory_kib(pid: int) -> dict[str, int]:
    status = _read(f"/proc/{pid}/status") or b""
    figures = {}
    for line in status.decode(errors="replace").splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            figures[key] = int(value.split()[0])
    return figures


def task_processes(run_ids: Iterable[str]) -> dict[int, str]:
    """Live processes carrying one of these runs' PIT_RUN_ID (every task process inherits it),
    with their command lines: whoever their parent is now."""
    markers = {f"PIT_RUN_ID={run_id}".encode() for run_id in run_ids}
    found = {}
    for pid in _pids():
        environ = _read(f"/proc/{pid}/environ")
        if environ and _alive(pid) and not markers.isdisjoint(environ.split(b"\0")):
            found[pid] = _cmdline(pid)
    return found


def kill_pid(pid: int, expected: str | None = None) -> bool:
    """SIGKILL one process by its id, if it is still the process meant (its command line holds
    `expected`); whether it was sent."""
    if not _alive(pid) or (expected is not None and expected not in _cmdline(pid)):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
        return True
    return False


# --- posting and waiting ---------------------------------------------------------------------


def post_runs(port: int, total: int) -> tuple[float, Counter[str], list[str]]:
    """POST `total` runs from CLIENTS concurrent workers: seconds taken, answers, run ids."""
    statuses: Counter[str] = Counter()
    run_ids: list[str] = []

    async def main() -> float:
        numbers = iter(range(total))
        limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60.0) as client:

            async def worker() -> None:
                for _ in numbers:
                    try:
                        response = await client.post(f"/api/dags/{DAG}/runs")
                    except httpx.HTTPError as error:
                        statuses[type(error).__name__] += 1
                        continue
                    statuses[str(response.status_code)] += 1
                    if response.status_code == 202:
                        run_ids.append(response.json()["run_id"])

            started = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for _ in range(CLIENTS):
                    nursery.start_soon(worker)
            return time.perf_counter() - started

    elapsed = trio.run(main)
    return elapsed, statuses, run_ids


def task_states(workspace: Path, run_ids: list[str]) -> tuple[Counter[str], int]:
    """Over the runs' run.json: how many tasks are in each state (queued ones counted only if
    they wait for POOL), and how many runs have no readable run.json yet."""
    states: Counter[str] = Counter()
    missing = 0
    for run_id in run_ids:
        record = read_run(workspace, run_id)
        if record is None:
            missing += 1
            continue
        for task in record["tasks"]:
            state = task["state"]
            if state == "queued" and task.get("pool") != POOL:
                state = f"queued (pool {task.get('pool')})"
            states[state] += 1
    return states, missing


def run_states(workspace: Path, run_ids: list[str]) -> Counter[str]:
    records = (read_run(workspace, run_id) for run_id in run_ids)
    return Counter("no run.json" if r is None else r["state"] for r in records)


def wait_for_queue(server: Server, workspace: Path, run_ids: list[str]) -> float:
    """Seconds from now until every run has its run.json and SLOTS tasks run, the rest queued."""
    started = time.monotonic()
    wanted = Counter({"running": SLOTS, "queued": len(run_ids) - SLOTS})
    while True:
        states, missing = task_states(workspace, run_ids)
        if missing == 0 and states == wanted:
            return time.monotonic() - started
        if server.process.poll() is not None or time.monotonic() - started > STATES_GUARD:
            raise SystemExit(
                f"pools: the runs never reached {SLOTS} running and the rest queued: "
                f"{dict(states)}, {missing} without run.json\n{tail(server.output())}"
            )
        time.sleep(0.5)


def api_running(port: int) -> int:
    """How many runs `GET /api/runs?state=running` lists (a page of up to 1000)."""
    response = httpx.get(
        f"http://127.0.0.1:{port}/api/runs",
        params={"dag": DAG, "state": "running", "limit": 1000},
        timeout=60.0,
    )
    response.raise_for_status()
    return len(response.json()["runs"])


def pool_status(workspace: Path, env: Mapping[str, str]) -> str:
    done = subprocess.run(
        [*pit_argv(), "-C", str(workspace), "status"],
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line.strip() for line in done.stdout.splitlines() if f"pool {POOL}" in line]
    return lines[0] if lines else f"(no pool line; exit {done.returncode})"


def tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


# --- the window ------------------------------------------------------------------------------


@dataclass
class Window:
    wall: float
    cpu: dict[str, float]
    """Role -> CPU seconds over the window."""
    slices: list[float]
    """CPU fraction of one core (all roles) in each 1 s slice."""


def measure_window(processes: PitProcesses, seconds: float) -> Window:
    roles = processes.roles()
    pids = [pid for group in roles.values() for pid in group]
    tick = os.sysconf("SC_CLK_TCK")

    def sample() -> dict[int, int]:
        ticks = {pid: cpu_ticks(pid) for pid in pids}
        gone = [pid for pid, value in ticks.items() if value is None]
        if gone:
            raise SystemExit(f"pools: pit process(es) {gone} ended during the window")
        return {pid: value for pid, value in ticks.items() if value is not None}

    first, started = sample(), time.monotonic()
    previous, previous_at = first, started
    slices = []
    while (now := time.monotonic()) < started + seconds:
        time.sleep(min(1.0, started + seconds - now))
        current, at = sample(), time.monotonic()
        used = sum(current.values()) - sum(previous.values())
        slices.append(used / tick / (at - previous_at))
        previous, previous_at = current, at
    wall = previous_at - started
    cpu = {
        role: sum(previous[pid] - first[pid] for pid in group) / tick
        for role, group in roles.items()
    }
    return Window(wall, cpu, slices)


# --- stopping --------------------------------------------------------------------------------


@dataclass
class Stopped:
    exit_code: int | None
    seconds: float
    """From the first SIGTERM to pit serve's exit (or its kill)."""
    killed_serve: bool
    left: dict[str, list[str]]
    """Role -> the processes still there LEFTOVER_GUARD s after pit serve ended (then killed)."""


def stop(server: Server, known: PitProcesses | None, run_ids: list[str]) -> Stopped:
    """SIGTERM, a second SIGTERM after SECOND_SIGTERM_AFTER s, SIGKILL after STOP_GUARD s more;
    then every process of pit serve's tree and every task process must end, or is killed."""
    process = server.process
    if process.poll() is None:  # also those started since `known` was taken, or if it was not
        tree = PitProcesses.scan(process.pid)
        if known is not None:
            tree.executor = sorted({*tree.executor, *known.executor})
            tree.guard = sorted({*tree.guard, *known.guard})
        known = tree
    started = time.monotonic()
    killed = False
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=SECOND_SIGTERM_AFTER)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GUARD)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            killed = True
    seconds = time.monotonic() - started
    pit_pids = {} if known is None else {"executor": known.executor, "guard": known.guard}
    expected = {"executor": "pit.cli.executor", "guard": "pit/cli/guard.py"}
    deadline = time.monotonic() + LEFTOVER_GUARD
    while True:
        left_pit = {
            role: [p for p in pids if _alive(p) and expected[role] in _cmdline(p)]
            for role, pids in pit_pids.items()
        }
        tasks = task_processes(run_ids)
        if (not tasks and not any(left_pit.values())) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    left: dict[str, list[str]] = {}
    for role, pids in left_pit.items():
        for pid in pids:
            left.setdefault(role, []).append(f"{pid} {_cmdline(pid)}")
            kill_pid(pid, expected[role])
    for pid, cmdline in tasks.items():
        left.setdefault("tasks", []).append(f"{pid} {cmdline}")
        kill_pid(pid)
    for role, lines in left.items():
        print(f"  left behind after pit serve stopped ({role}), killed: {lines}", file=sys.stderr)
    return Stopped(process.returncode, seconds, killed, left)


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = common_args(__doc__.splitlines()[0])
    args = parser.parse_args()
    tmp = make_tmp("pools", args)
    try:
        return _run(tmp, args)
    finally:
        cleanup(tmp, args)


def _run(tmp: Path, args: argparse.Namespace) -> int:
    env = child_env(tmp, pyc_cache=not args.no_pyc_cache)
    total = 100 if args.quick else 1000
    settle = 3.0 if args.quick else 5.0
    seconds = 10.0 if args.quick else 20.0
    report = Report("pools", args.quick)
    workspace = tmp / "ws"
    build_workspace(workspace)
    validate_workspace(workspace, env)
    print(f"pools: warm-up, then {total} runs behind a pool of {SLOTS}", file=sys.stderr)
    warm_up(tmp, env)

    server = start_pit(workspace, env, tmp / "pit-serve.log")
    run_ids: list[str] = []
    processes: PitProcesses | None = None
    stopped: Stopped | None = None
    try:
        server.wait_listening()
        processes = PitProcesses.scan(server.process.pid)
        posting, statuses, run_ids = post_runs(server.port, total)
        print(f"  posted {total} runs in {fmt_seconds(posting)}: {dict(statuses)}", file=sys.stderr)
        if not run_ids:
            raise SystemExit(f"pools: no run accepted: {dict(statuses)}\n{tail(server.output())}")
        waited = wait_for_queue(server, workspace, run_ids)
        print(
            f"  {SLOTS} running, {len(run_ids) - SLOTS} queued after {waited:.1f}s more",
            file=sys.stderr,
        )
        listed = api_running(server.port)
        time.sleep(settle)
        processes = PitProcesses.scan(server.process.pid)
        if len(processes.executor) != 1:
            raise SystemExit(f"pools: expected one executor process, found {processes.executor}")
        window = measure_window(processes, seconds)
        memory = {
            role: [memory_kib(pid) for pid in pids] for role, pids in processes.roles().items()
        }
        lifetime = {  # CPU since each started: that the counters move at all
            role: sum(cpu_ticks(pid) or 0 for pid in pids) / os.sysconf("SC_CLK_TCK")
            for role, pids in processes.roles().items()
        }
        after = PitProcesses.scan(server.process.pid)
        states_after, missing_after = task_states(workspace, run_ids)
        status_line = pool_status(workspace, env)
    finally:
        stopped = stop(server, processes, run_ids)
    final_runs = run_states(workspace, run_ids)
    final_tasks, _ = task_states(workspace, run_ids)
    output = server.output()
    errors = [line for line in output.splitlines() if ERROR_LINE.search(line)]

    total_cpu = sum(window.cpu.values())
    percent = {role: 100 * cpu / window.wall for role, cpu in window.cpu.items()}
    total_percent = 100 * total_cpu / window.wall
    rows = []
    for role, pids in processes.roles().items():
        rss = sum(m.get("VmRSS", 0) for m in memory[role]) / 1024
        hwm = sum(m.get("VmHWM", 0) for m in memory[role]) / 1024
        rows.append(
            [
                f"{role} ({', '.join(map(str, pids)) or 'none'})",
                f"{window.cpu[role]:.2f}s",
                f"{percent[role]:.2f}%",
                f"{rss:.1f}",
                f"{hwm:.1f}",
            ]
        )
    rows.append(["all of pit", f"{total_cpu:.2f}s", f"{total_percent:.2f}%", "", ""])
    print()
    print(
        table(
            [
                f"{len(run_ids)} runs waiting, {window.wall:.1f}s window",
                "CPU",
                "of a core",
                "VmRSS MB",
                "VmHWM MB",
            ],
            rows,
        )
    )
    slices = [100 * s for s in window.slices]
    report.info.append(
        f"posting {total} runs (POST /api/dags/{DAG}/runs, {CLIENTS} clients) took "
        f"{fmt_seconds(posting)} ({total / posting:.0f} runs/s), answers "
        + ", ".join(f"{status} x{count}" for status, count in sorted(statuses.items()))
        + f"; then {waited:.1f}s until {SLOTS} running and {len(run_ids) - SLOTS} queued"
    )
    report.info.append(
        f"window {window.wall:.1f}s after {settle:.0f}s settling: "
        + ", ".join(f"{role} {percent[role]:.2f}%" for role in window.cpu)
        + f" of a core; 1 s slices min {min(slices):.2f}%, median {median(slices):.2f}%, "
        f"max {max(slices):.2f}%"
    )
    report.info.append(
        "memory: "
        + ", ".join(
            f"{role} VmRSS {sum(m.get('VmRSS', 0) for m in ms) / 1024:.1f} MB "
            f"(VmHWM {sum(m.get('VmHWM', 0) for m in ms) / 1024:.1f} MB)"
            for role, ms in memory.items()
        )
        + "; CPU since start: "
        + ", ".join(f"{role} {cpu:.2f}s" for role, cpu in lifetime.items())
    )
    report.info.append(
        f"cross-checks: GET /api/runs?state=running listed {listed} runs; after the window "
        f"{dict(states_after)} ({missing_after} without run.json), task processes "
        f"{len(after.tasks)}; pit status: {status_line!r}"
    )
    stop_how = "killed (SIGKILL)" if stopped.killed_serve else f"exit code {stopped.exit_code}"
    report.info.append(
        f"stop: SIGTERM, SIGTERM {SECOND_SIGTERM_AFTER:.0f}s later: pit serve {stop_how} after "
        f"{stopped.seconds:.1f}s; runs then {dict(final_runs)}, tasks {dict(final_tasks)}"
    )
    for role, lines in stopped.left.items():
        report.info.append(f"left behind ({role}, killed now): {len(lines)}, e.g. {lines[:3]}")
    if errors:
        report.info.append(f"pit serve's output: {len(errors)} error line(s), e.g. {errors[:3]}")
    report.check(
        f"CPU of pit serve + executor (+ guard) with {len(run_ids) - SLOTS} tasks queued "
        f"behind a pool of {SLOTS}",
        total_percent,
        CPU_TARGET_PERCENT,
        unit="%",
        detail=f"{total_cpu:.2f}s CPU in {window.wall:.1f}s",
    )
    not_accepted = sum(count for status, count in statuses.items() if status != "202")
    report.check("answers other than 202", not_accepted, 0, unit="", detail=f"of {total}")
    report.check(
        "processes left after pit serve stopped",
        sum(len(lines) for lines in stopped.left.values()),
        0,
        unit="",
        detail=", ".join(f"{role} {len(lines)}" for role, lines in stopped.left.items()),
    )
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
