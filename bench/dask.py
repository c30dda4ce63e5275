"""Scale-out on Dask: pit's cost per remote task against Dask's own bare `client.submit`.

One `distributed.LocalCluster` (2 worker processes of 2 threads, 127.0.0.1, no dashboard) runs
in a child process of its own for the whole benchmark; both sides send their tasks to it.

- pit: a workspace whose `pit_config.toml` holds `[executor] kind = "dask"`, the cluster's
  `scheduler` and `callback = "127.0.0.1"`, with two DAGs: `fan`, 500 independent tasks (100
  with --quick) whose command is `true` (`runner = "$ true"`, so `true tasks/t.sh`, the same
  program the baseline runs), `max_active_tasks = 1000` (the
  most pit allows: no limit here), and `one`, a single such task. One long-lived child trio
  program (`pit_driver.py`) does what `pit run` does in its process (`gc.freeze`, the orphan
  subreaper, the run guard, the SDK socket folder, the run store's writer, `open_clusters`,
  then `execute_run` of the plan made by `plan_run`, and `end_escapees` after it; the view is
  left out) for each run it is asked for on stdin.
  Timed: the wall time of that `execute_run` + `end_escapees`, from the run's folder being made
  to its final record (every task on a worker, its log written, run.json final), measured in the
  driver with `time.perf_counter`. Not timed: the process's start-up, Dask's import and the
  client's connection, and the workers' first fetch of each DAG's project tarball (all done by
  untimed warm-up runs: one `fan`, three `one`), and the removal of the run's folder afterwards.
- bare: one long-lived child Python process connected by `distributed.Client(address)` (not
  timed), warmed up the same way, which times `N` `client.submit(subprocess.run, ["true"],
  pure=False)` + `client.gather` of them (the issue's baseline), and 1 of them for the single.

Rounds of the fan-out rotate the two sides (`rounds`); then the single-task runs, rotating too.
Every pit run must end `success`, every task on a Dask worker (its `worker` recorded), and
every bare `true` must exit 0, or the benchmark stops.

Targets (the issue):
1. Fan-out of 500 `true` tasks on the 2-worker cluster: pit's cost per task (its run's time / N)
   <= 2x the bare submit's (its time / N), medians.
2. One task start to finish on a warm cluster (the `one` DAG's run, as timed above) < 100 ms,
   median.
Also shown: tasks/s and ms per task of both sides, the marginal cost per task
`(T(N) - T(1)) / (N - 1)` of each, the run's own duration from its record, and the CPU time of
every process per task of a fan-out, read from /proc/<pid>/stat (utime + stime + those of the
reaped children) before and after each measurement: the workers (with the task processes they
reaped), the scheduler (with LocalCluster's nannies, in the cluster's own process) and the
client process. The 2 cores being the limit here, that split says where the time goes, and moves
less with the machine's other load than the wall clock does.

Note: this file is named `dask.py`, and `bench/` is first on `sys.path` when it runs, so this
process never imports Dask itself: only its children (written to the temporary folder) do.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from _harness import (
    PYTHON,
    Report,
    TaskDef,
    child_env,
    cleanup,
    common_args,
    fmt_seconds,
    make_tmp,
    median,
    medians_table,
    rounds,
    validate_workspace,
    write_project,
)

FANOUT_TARGET = 2.0
SINGLE_TARGET = 0.1
"""Seconds: one task start to finish on a warm cluster."""
MAX_ACTIVE = 1000
"""pit's largest max_active_tasks (pit.spec.limits.MAX_ACTIVE): no limit for these fan-outs."""
TRUE_SCRIPT = "#!/usr/bin/env bash\ntrue\n"
TRUE = "$ true"
"""Each task's command is `true tasks/t.sh` (a custom runner): `true`, as the baseline's."""
SINGLE_WARM_UPS = 3
"""Untimed runs of the 1-task DAG first: each worker fetches its tarball at its first attempt."""
STARTUP_GUARD = 120.0
"""Seconds the cluster gets to print its address."""
ANSWER_GUARD = 600.0
"""Seconds a child gets to answer one request (a hang, not slowness)."""
RESULT = "RESULT "

LOCAL_CLUSTER = """\
import sys

from distributed import LocalCluster

if __name__ == "__main__":
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=2, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=40, local_directory=sys.argv[1],
    )
    print(cluster.scheduler_address, flush=True)
    sys.stdin.read()  # until the benchmark closes it
    cluster.close()
"""

BARE_CLIENT = """\
\"\"\"Baseline: Dask's own client. Each line on stdin is a count N: time N
client.submit(subprocess.run, ["true"], pure=False) + client.gather, answer on stdout.\"\"\"
import json
import subprocess
import sys
import time

from distributed import Client

if __name__ == "__main__":
    client = Client(sys.argv[1], set_as_default=False)
    for line in sys.stdin:
        count = int(line)
        started = time.perf_counter()
        futures = [client.submit(subprocess.run, ["true"], pure=False) for _ in range(count)]
        done = client.gather(futures)
        seconds = time.perf_counter() - started
        answer = {
            "seconds": seconds,
            "failed": sum(result.returncode != 0 for result in done),
            "count": len(done),
        }
        del futures, done
        print("RESULT " + json.dumps(answer), flush=True)
    client.close()
"""

PIT_DRIVER = """\
\"\"\"pit's side: what `pit run` does in its process (pit.cli.foreground, without the view), for
each DAG named on stdin, in one long-lived process; each run's figures answered on stdout.\"\"\"
import gc
import json
import os
import shutil
import sys
import time
from pathlib import Path

import trio

from pit.actors.broker import SocketFolder
from pit.actors.execute import execute_run
from pit.actors.guard import RunGuard
from pit.actors.orphans import adopt_orphans, end_escapees
from pit.actors.plans import plan_run
from pit.actors.store import StoreWriter
from pit.clock import SystemClock
from pit.remote.clusters import open_clusters
from pit.spec.load import load_workspace
from pit.store.runstore import store_path


async def serve(root, guard):
    workspace = load_workspace(Path(root))
    plans = {name: plan_run(workspace.find(name), workspace) for name in sys.argv[2:]}
    store = StoreWriter(
        path=store_path(workspace.root, workspace.config.metadata_db),
        runs_dir=workspace.runs_dir,
    )
    with SocketFolder.create() as sockets:
        guard.holds(sockets.path)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.run)
            try:
                async with open_clusters() as clusters:
                    while name := (await trio.to_thread.run_sync(sys.stdin.readline)).strip():
                        plan = plans[name]
                        started = time.perf_counter()
                        record = await execute_run(
                            plan,
                            clock=SystemClock(),
                            env=os.environ,
                            sockets=sockets,
                            guard=guard,
                            store=store,
                            clusters=clusters,
                        )
                        await end_escapees(record.run_id, unmarked=True)
                        seconds = time.perf_counter() - started
                        tasks = record.tasks
                        answer = {
                            "seconds": seconds,
                            "state": record.state.value,
                            "error": record.error,
                            "run": (record.ended_at - record.started_at).total_seconds(),
                            "tasks": len(tasks),
                            "succeeded": sum(t.state.value == "success" for t in tasks),
                            "on_workers": sum(t.worker is not None for t in tasks),
                            "first_error": next((t.error for t in tasks if t.error), None),
                            "workers": sorted({t.worker for t in tasks if t.worker}),
                        }
                        await trio.to_thread.run_sync(
                            shutil.rmtree, plan.runs_dir / record.run_id
                        )
                        print("RESULT " + json.dumps(answer), flush=True)
            finally:
                store.close()


if __name__ == "__main__":
    gc.freeze()
    adopt_orphans()
    with RunGuard.start() as guard:
        trio.run(serve, sys.argv[1], guard)
"""


class Child:
    """A long-lived child in a session of its own: requests on its stdin, answers (lines
    starting with RESULT) on its stdout, its stderr to a log file. `close` ends it (and its
    process group) whatever state it is in."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], tmp: Path) -> None:
        self.name = name
        self.log = tmp / f"{name}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=tmp,
                env=dict(env),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,
            )

    @property
    def stdin(self) -> IO[str]:
        assert self.process.stdin is not None
        return self.process.stdin

    def readline(self, guard: float) -> str:
        """The next line of its stdout; the benchmark stops if it ends or hangs first."""
        assert self.process.stdout is not None
        with contextlib.ExitStack() as stack:
            # A hang must not hold the benchmark for ever: SIGALRM interrupts the read.
            def late(_signum: int, _frame: Any) -> None:
                raise TimeoutError

            previous = signal.signal(signal.SIGALRM, late)
            stack.callback(signal.signal, signal.SIGALRM, previous)
            signal.alarm(int(guard))
            stack.callback(signal.alarm, 0)
            try:
                line = self.process.stdout.readline()
            except TimeoutError:
                line = None
        if not line:
            what = "did not answer in time" if line is None else f"ended ({self.process.poll()})"
            raise SystemExit(f"dask: the {self.name} {what}:\n{self.tail()}")
        return line

    def ask(self, request: str) -> dict[str, Any]:
        self.stdin.write(request + "\n")
        self.stdin.flush()
        while not (line := self.readline(ANSWER_GUARD)).startswith(RESULT):
            pass  # anything else a library printed
        return dict(json.loads(line.removeprefix(RESULT)))

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.is_file() else ""
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        """Close its stdin (it ends by itself), then SIGTERM, then SIGKILL its process group."""
        process = self.process
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        for sig, wait in ((None, 30.0), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            if sig is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, sig)
            try:
                process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # Its workers and guards share its process group: nothing of it outlives it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def group_cpu(pgid: int) -> dict[int, float]:
    """CPU seconds (utime + stime, and those of the children it reaped) of every process in
    process group `pgid`, by pid."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as file:
                fields = file.read().rpartition(b")")[2].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[2]) == pgid:
            found[int(entry.name)] = sum(int(f) for f in fields[11:15]) / tick
    return found


class CpuMeter:
    """The CPU the cluster's processes (the scheduler, with LocalCluster's nannies, and the
    workers with the task processes they reaped) and one client process use over a
    measurement."""

    def __init__(self, cluster: Child) -> None:
        self.cluster = cluster.process.pid

    def sample(self, client: Child) -> dict[str, float]:
        cluster = group_cpu(self.cluster)
        return {
            "scheduler": cluster.pop(self.cluster, 0.0),
            "workers": sum(cluster.values()),
            "client": sum(group_cpu(client.process.pid).values()),
        }

    @staticmethod
    def used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {part: after[part] - before[part] for part in before}


def build_workspace(workspace: Path, address: str, tasks: int) -> None:
    workspace.mkdir(parents=True)
    (workspace / "pit_config.toml").write_text(
        f'[executor]\nkind = "dask"\nscheduler = "{address}"\ncallback = "127.0.0.1"\n'
    )
    script = {"tasks/t.sh": TRUE_SCRIPT}
    write_project(
        workspace,
        "fan",
        dag="fan",
        tasks=[TaskDef(f"t{i}", "tasks/t.sh", runner=TRUE) for i in range(tasks)],
        scripts=script,
        max_active_tasks=MAX_ACTIVE,
    )
    one = [TaskDef("t0", "tasks/t.sh", runner=TRUE)]
    write_project(workspace, "one", dag="one", tasks=one, scripts=script)


def main() -> int:
    args = common_args(__doc__.splitlines()[0]).parse_args()
    tmp = make_tmp("dask", args)
    try:
        return _run(tmp, args)
    finally:
        cleanup(tmp, args)


def _run(tmp: Path, args: argparse.Namespace) -> int:
    tasks = 100 if args.quick else 500
    repeat = args.repeat or (2 if args.quick else 5)
    singles = 5 if args.quick else 15
    env = child_env(tmp, pyc_cache=not args.no_pyc_cache)
    # As the tests run their clusters: no network for uv, no warnings in the logs.
    env |= {"UV_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    for name, source in (
        ("local_cluster.py", LOCAL_CLUSTER),
        ("bare_client.py", BARE_CLIENT),
        ("pit_driver.py", PIT_DRIVER),
    ):
        (tmp / name).write_text(source)
    (tmp / "dask-workers").mkdir()

    with contextlib.ExitStack() as children:
        print("dask: starting the LocalCluster (2 workers x 2 threads)", file=sys.stderr)
        cluster = Child(
            "cluster",
            [PYTHON, str(tmp / "local_cluster.py"), str(tmp / "dask-workers")],
            env,
            tmp,
        )
        children.callback(cluster.close)
        address = cluster.readline(STARTUP_GUARD).strip()
        if not address.startswith("tcp://"):
            raise SystemExit(f"dask: the LocalCluster did not start: {address}\n{cluster.tail()}")
        workspace = tmp / "ws"
        build_workspace(workspace, address, tasks)
        validate_workspace(workspace, env)

        bare = Child("bare client", [PYTHON, str(tmp / "bare_client.py"), address], env, tmp)
        children.callback(bare.close)
        pit = Child(
            "pit driver",
            [PYTHON, str(tmp / "pit_driver.py"), str(workspace), "fan", "one"],
            env,
            tmp,
        )
        children.callback(pit.close)

        answers: dict[str, list[dict[str, Any]]] = {}
        meter = CpuMeter(cluster)

        def pit_run(dag: str, count: int) -> float:
            before = meter.sample(pit)
            answer = pit.ask(dag)
            answer["all_cpu"] = meter.used(before, meter.sample(pit))
            if (
                answer["state"] != "success"
                or answer["succeeded"] != count
                or answer["on_workers"] != count
            ):
                raise SystemExit(
                    f"dask: pit's run of {dag} did not succeed on the workers: {answer}"
                )
            answers.setdefault(f"pit {dag}", []).append(answer)
            return float(answer["seconds"])

        def bare_run(count: int) -> float:
            before = meter.sample(bare)
            answer = bare.ask(str(count))
            answer["all_cpu"] = meter.used(before, meter.sample(bare))
            if answer["failed"] or answer["count"] != count:
                raise SystemExit(f"dask: the bare submits failed: {answer}")
            answers.setdefault(f"bare {count}", []).append(answer)
            return float(answer["seconds"])

        print(f"dask: warm-up (connect, tarballs), then {repeat} rounds", file=sys.stderr)
        warm = {"pit": pit_run("fan", tasks), "bare": bare_run(tasks)}
        for _ in range(SINGLE_WARM_UPS):
            pit_run("one", 1)
            bare_run(1)
        print(
            f"  warm-up fan-out: pit {fmt_seconds(warm['pit'])} (connecting included), "
            f"bare {fmt_seconds(warm['bare'])}",
            file=sys.stderr,
        )
        answers.clear()
        fan = rounds(
            {"pit": lambda: pit_run("fan", tasks), "bare": lambda: bare_run(tasks)},
            repeat,
            label="fan-out ",
        )
        one = rounds(
            {"pit": lambda: pit_run("one", 1), "bare": lambda: bare_run(1)},
            singles,
            label="one task ",
        )
        workers = sorted({w for a in answers["pit fan"] for w in a["workers"]})

    print()
    print(medians_table(f"fan-out of {tasks} true tasks", fan))
    print()
    print(medians_table("one task", one))

    pit_fan, bare_fan = median(fan["pit"]), median(fan["bare"])
    pit_one, bare_one = median(one["pit"]), median(one["bare"])
    report = Report("dask", args.quick)
    report.info.append(
        f"fan-out of {tasks}: pit {fmt_seconds(pit_fan)} ({tasks / pit_fan:.0f} tasks/s, "
        f"{1000 * pit_fan / tasks:.2f} ms/task), bare client.submit {fmt_seconds(bare_fan)} "
        f"({tasks / bare_fan:.0f} tasks/s, {1000 * bare_fan / tasks:.2f} ms/task); "
        f"pit's tasks ran on {len(workers)} workers; the pit run's own started_at..ended_at "
        f"{fmt_seconds(median(a['run'] for a in answers['pit fan']))}"
    )
    marginal_pit = (pit_fan - pit_one) / (tasks - 1)
    marginal_bare = (bare_fan - bare_one) / (tasks - 1)
    report.info.append(
        f"marginal cost per task (T({tasks}) - T(1)) / {tasks - 1}: pit "
        f"{1000 * marginal_pit:.2f} ms, bare {1000 * marginal_bare:.2f} ms "
        f"({marginal_pit / marginal_bare:.2f}x)"
    )
    parts = ("workers", "scheduler", "client")
    spent = {
        side: {part: median(a["all_cpu"][part] for a in answers[key]) / tasks for part in parts}
        for side, key in (("pit", "pit fan"), ("bare", f"bare {tasks}"))
    }
    total = {side: sum(by_part.values()) for side, by_part in spent.items()}
    report.info.append(
        "CPU of every process per task of the fan-out (medians; the machine's 2 cores are the "
        f"limit): pit {1000 * total['pit']:.2f} ms, bare {1000 * total['bare']:.2f} ms "
        f"({total['pit'] / total['bare']:.2f}x); "
        + ", ".join(
            f"{part} {1000 * spent['pit'][part]:.2f} vs {1000 * spent['bare'][part]:.2f} ms"
            for part in parts
        )
        + " (workers: with the task processes they reaped; scheduler: with LocalCluster's "
        "nannies)"
    )
    run_one = median(a["run"] for a in answers["pit one"])
    report.info.append(
        f"one task: pit {fmt_seconds(pit_one)} (run.json's started_at..ended_at "
        f"{fmt_seconds(run_one)}), bare submit + result {fmt_seconds(bare_one)}"
    )
    report.check(
        f"fan-out of {tasks} true tasks on 2 Dask workers: pit per task / bare client.submit",
        pit_fan / bare_fan,
        FANOUT_TARGET,
        detail=f"{1000 * pit_fan / tasks:.2f} ms vs {1000 * bare_fan / tasks:.2f} ms per task",
    )
    report.check(
        "one task start to finish on a warm cluster (median)",
        pit_one,
        SINGLE_TARGET,
        unit="s",
        detail=f"{fmt_seconds(pit_one)}, {len(one['pit'])} runs, "
        f"min..max {fmt_seconds(min(one['pit']))}..{fmt_seconds(max(one['pit']))}",
    )
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
