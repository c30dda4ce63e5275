"""Whole runs of real `.sh` tasks through `execute_run`: process groups, logs, run folders.

These need real time and real processes, so they are marked `slow`; each takes about a second.
Scripts record the PIDs they start in `$PIDS`, a file outside the run, so a test can check that no
process of a task outlived it (and the `bench` fixture kills any that did, test passed or not).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import signal
import stat
import textwrap
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path

import attrs
import pytest
import trio

from pit.actors.execute import StartedRun, execute_run
from pit.clock import FixedClock
from pit.messages.run import CancelRun, RunRecord, RunRequest, TaskRecord
from pit.messages.task import TaskOutput
from pit.spec.dag import DagSpec, Runner, RunnerKind, TaskSpec
from pit.spec.states import RunState, TaskState
from pit.store.rundir import RunPaths, read_manifest

from .loglines import log_lines

pytestmark = pytest.mark.slow

T0 = dt.datetime(2024, 5, 1, 6, 0, tzinfo=dt.UTC)
RUN_ID = "20240501_060000.000_demo"
GRACE = 0.5
HANG_LIMIT = 10.0
"""Seconds after which a run that should have ended fails its test (a stop that never came)."""
BASH = Runner(kind=RunnerKind.BASH)

S = TaskState


@contextlib.asynccontextmanager
async def bounded_nursery() -> AsyncIterator[trio.Nursery]:
    """A nursery that fails its test, rather than hang it, when pit does not stop a task."""
    with trio.fail_after(HANG_LIMIT):
        async with trio.open_nursery() as nursery:
            yield nursery


async def _collect(received: trio.MemoryReceiveChannel[TaskOutput], into: list[TaskOutput]) -> None:
    async with received:
        async for chunk in received:
            into.append(chunk)


def task(name: str, *depends_on: str, **options: object) -> TaskSpec:
    options.setdefault("runner", BASH)
    return TaskSpec(
        name=name,
        script=f"{name}.sh",
        depends_on=depends_on,
        **options,  # type: ignore[arg-type]
    )


def dag(*tasks: TaskSpec, timeout: float | None = None) -> DagSpec:
    return DagSpec(name="demo", tasks=tasks, timeout=timeout)


def write_scripts(project: Path, scripts: Mapping[str, str]) -> None:
    """Write each `path: body` under `project`, executable; bodies are dedented."""
    for relative, body in scripts.items():
        path = project / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(body))
        path.chmod(0o755)


@attrs.frozen
class Bench:
    """A test's project folder (`project`), runs folder (`runs`) and PID file, under its tmp."""

    tmp: Path
    pid_file: Path

    @property
    def project(self) -> Path:
        return self.tmp / "project"

    @property
    def runs(self) -> Path:
        return self.tmp / "runs"

    @property
    def paths(self) -> RunPaths:
        return RunPaths(root=self.runs / RUN_ID)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "PIDS": str(self.pid_file)}

    def request(self, spec: DagSpec, **options: object) -> RunRequest:
        options.setdefault("grace", GRACE)
        return RunRequest(
            dag=spec,
            source_dir=self.project,
            runs_dir=self.runs,
            **options,  # type: ignore[arg-type]
        )

    async def run(
        self,
        spec: DagSpec,
        *,
        live_output: list[TaskOutput] | None = None,
        extra_env: Mapping[str, str] | None = None,
        **options: object,
    ) -> RunRecord:
        """Run `spec` to its end; `options` go to the `RunRequest`. Given a `live_output` list,
        the run's output is streamed (as for `pit run -v`) and each chunk appended to it."""
        env = {**self.env, **(extra_env or {})}
        run = functools.partial(
            execute_run, self.request(spec, **options), clock=FixedClock(T0), env=env
        )
        async with bounded_nursery() as nursery:
            if live_output is None:
                return await run()
            output, received = trio.open_memory_channel[TaskOutput](0)
            nursery.start_soon(_collect, received, live_output)
            async with output:
                return await run(output=output)

    def pids(self) -> list[int]:
        if not self.pid_file.exists():
            return []
        return [int(line) for line in self.pid_file.read_text().split()]

    def log(self, name: str) -> str:
        return self.paths.log(name).read_text()


def _stat(pid: int) -> tuple[str, int] | None:
    """The state letter and process group of `pid`, or None if there is no such process."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = status.rsplit(")", 1)[1].split()
    return fields[0], int(fields[2])


def is_running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (a zombie is dead, just not yet reaped)."""
    found = _stat(pid)
    return found is not None and found[0] not in ("Z", "X")


def survivors(pids: list[int]) -> list[int]:
    """Running processes among `pids` and in the process groups they lead. A task's script
    records `$$`, the leader of the task's group, so this also finds processes it did not record
    (the `sleep` inside a backgrounded subshell)."""
    groups = set(pids)
    members = [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and (found := _stat(int(entry.name))) and found[1] in groups
    ]
    return sorted(pid for pid in {*pids, *members} if is_running(pid))


def _started_by_a_test_script(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return command.split(b"\0")[0] in (b"sleep", b"bash")


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    space = Bench(tmp=tmp_path, pid_file=tmp_path / "pids")
    space.project.mkdir()
    yield space
    # Never leave a `sleep 300` behind, even when a test failed.
    for pid in survivors(space.pids()):
        if _started_by_a_test_script(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def still_running(pids: list[int]) -> list[int]:
    """`survivors(pids)` after a short wait (a SIGKILLed process takes a moment to exit)."""
    for _ in range(50):  # up to a second; /proc offers nothing to wait on but polling
        if not survivors(pids):
            break
        await trio.sleep(0.02)
    return survivors(pids)


def task_record(record: RunRecord, name: str) -> TaskRecord:
    (found,) = [t for t in record.tasks if t.name == name]
    return found


# --- no process of a task outlives it -------------------------------------------------------

GRANDCHILDREN = """\
    sleep 300 &
    echo $! >> "$PIDS"
    ( sleep 300; echo never ) &
    echo $! >> "$PIDS"
    bash -c 'sleep 300 & echo $! >> "$PIDS"; sleep 300' &
    echo $! >> "$PIDS"
    echo $$ >> "$PIDS"
    while [ "$(wc -l < "$PIDS")" -lt 5 ]; do sleep 0.01; done
    echo started
    """


@pytest.mark.parametrize("live_output", [False, True], ids=["log-only", "live-output"])
async def test_a_timed_out_task_takes_its_background_grandchildren_with_it(
    bench: Bench, live_output: bool
) -> None:
    write_scripts(bench.project, {"spawner.sh": GRANDCHILDREN + "sleep 300\n"})
    spec = dag(task("spawner", timeout=1.0))

    record = await bench.run(spec, live_output=[] if live_output else None)

    pids = bench.pids()
    assert len(pids) == 5, "the script did not record all its processes"
    assert await still_running(pids) == []
    spawner = task_record(record, "spawner")
    assert (spawner.state, spawner.error) == (S.FAILED, "timed out after 1.0s")
    assert "started" in bench.log("spawner")


@pytest.mark.parametrize("live_output", [False, True], ids=["log-only", "live-output"])
async def test_processes_left_behind_by_a_task_that_succeeded_are_killed(
    bench: Bench, live_output: bool
) -> None:
    write_scripts(bench.project, {"leaver.sh": GRANDCHILDREN + "exit 0\n"})

    start = trio.current_time()
    record = await bench.run(dag(task("leaver")), live_output=[] if live_output else None)

    pids = bench.pids()
    assert len(pids) == 5
    assert await still_running(pids) == []
    assert task_record(record, "leaver").state is S.SUCCESS
    assert record.state is RunState.SUCCESS
    elapsed = trio.current_time() - start
    # leftovers get SIGKILL as soon as the main process exits: no grace period, no waiting on them
    assert elapsed < 2.0, f"the run took {elapsed:.1f}s: it waited on the leftovers"


@pytest.mark.parametrize("live_output", [False, True], ids=["log-only", "live-output"])
async def test_a_task_ignoring_sigterm_is_sigkilled_after_the_grace_period(
    bench: Bench, live_output: bool
) -> None:
    write_scripts(
        bench.project,
        {
            "stubborn.sh": """\
                trap '' TERM
                echo $$ >> "$PIDS"
                sleep 300
                """
        },
    )

    start = trio.current_time()
    record = await bench.run(
        dag(task("stubborn", timeout=0.5)), live_output=[] if live_output else None
    )
    elapsed = trio.current_time() - start

    stubborn = task_record(record, "stubborn")
    assert stubborn.state is S.FAILED
    assert stubborn.error == "timed out after 500ms"
    assert stubborn.exit_code == -signal.SIGKILL
    assert elapsed >= 0.5 + GRACE, "SIGKILL came before the grace period was over"
    assert elapsed < 2.5, f"the run took {elapsed:.1f}s: SIGKILL came late"
    assert await still_running(bench.pids()) == []


async def test_a_task_that_obeys_sigterm_does_not_wait_for_the_grace_period(
    bench: Bench,
) -> None:
    write_scripts(bench.project, {"polite.sh": 'echo $$ >> "$PIDS"\nsleep 300\n'})

    start = trio.current_time()
    record = await bench.run(dag(task("polite", timeout=0.5)), grace=30.0)
    elapsed = trio.current_time() - start

    polite = task_record(record, "polite")
    assert (polite.state, polite.exit_code) == (S.FAILED, -signal.SIGTERM)
    assert elapsed < 2.0
    assert await still_running(bench.pids()) == []


# --- logs, environment and the snapshot -----------------------------------------------------


async def test_stdout_and_stderr_of_every_attempt_land_in_the_log_under_its_header(
    bench: Bench,
) -> None:
    write_scripts(
        bench.project,
        {
            "flaky.sh": """\
                echo "out $PIT_ATTEMPT"
                echo "err $PIT_ATTEMPT" >&2
                [ "$PIT_ATTEMPT" -ge 2 ] || exit 3
                """
        },
    )

    record = await bench.run(dag(task("flaky", retries=1, retry_delay=0.1)))

    assert log_lines(bench.log("flaky")) == [
        "=== attempt 1/2",
        "out 1",
        "err 1",
        "=== attempt 2/2",
        "out 2",
        "err 2",
    ]
    flaky = task_record(record, "flaky")
    assert (flaky.state, flaky.attempts, flaky.exit_code, flaky.error) == (S.SUCCESS, 2, 0, None)


async def test_a_task_is_told_its_run_through_its_environment_and_runs_in_the_snapshot(
    bench: Bench,
) -> None:
    write_scripts(
        bench.project,
        {
            "show.sh": """\
                echo "attempt=$PIT_ATTEMPT"
                echo "run=$PIT_RUN_ID"
                echo "task=$PIT_TASK_NAME"
                echo "dag=$PIT_DAG_NAME"
                echo "data=$PIT_DATA_DIR"
                echo "cwd=$(pwd -P)"
                echo "venv=${VIRTUAL_ENV-unset}"
                """
        },
    )

    record = await bench.run(dag(task("show")), extra_env={"VIRTUAL_ENV": "/pit/.venv"})

    assert record.state is RunState.SUCCESS
    told = dict(line.split("=", 1) for line in bench.log("show").splitlines()[1:])
    assert told == {
        "attempt": "1",
        "run": RUN_ID,
        "task": "show",
        "dag": "demo",
        "data": str(bench.paths.data),
        "cwd": str(bench.paths.project.resolve()),
        "venv": "unset",
    }


async def test_the_snapshot_skips_venvs_and_vcs_data_and_keeps_the_executable_bit(
    bench: Bench,
) -> None:
    write_scripts(
        bench.project,
        {
            "check.sh": """\
                ./bin/tool
                for skipped in .venv .git __pycache__ node_modules lib/__pycache__; do
                    if [ -e "$skipped" ]; then echo "present: $skipped"; exit 1; fi
                done
                """,
            "bin/tool": "#!/bin/sh\necho tool ran\n",
            "lib/code.py": "",
            ".venv/bin/python": "",
            ".git/HEAD": "ref: refs/heads/main\n",
            "__pycache__/x.pyc": "",
            "lib/__pycache__/code.pyc": "",
            "node_modules/pkg/index.js": "",
        },
    )

    record = await bench.run(dag(task("check")))

    assert "tool ran" in bench.log("check")
    assert task_record(record, "check").state is S.SUCCESS
    snapshot = bench.paths.project
    copied = sorted(str(p.relative_to(snapshot)) for p in snapshot.rglob("*"))
    assert copied == ["bin", "bin/tool", "check.sh", "lib", "lib/code.py"]
    assert snapshot.joinpath("bin/tool").stat().st_mode & stat.S_IXUSR


# --- run.json and retention -----------------------------------------------------------------


async def test_run_json_holds_the_final_states_attempts_exit_codes_and_errors(
    bench: Bench,
) -> None:
    write_scripts(
        bench.project,
        {
            "ok.sh": "echo fine\n",
            "bad.sh": "exit 3\n",
            "after_bad.sh": "echo unreachable\n",
            "slow.sh": 'echo $$ >> "$PIDS"\nsleep 300\n',
        },
    )
    spec = dag(
        task("ok"),
        task("bad", retries=1, retry_delay=0.05),
        task("after_bad", "bad"),
        task("slow", timeout=0.3),
    )

    record = await bench.run(spec)

    manifest = read_manifest(bench.paths.manifest)
    assert manifest == record
    assert (manifest.run_id, manifest.dag, manifest.trigger) == (RUN_ID, "demo", "manual")
    assert manifest.state is RunState.FAILED
    assert (manifest.started_at, manifest.ended_at) == (T0, T0)
    found = {t.name: (t.state, t.attempts, t.exit_code, t.error) for t in manifest.tasks}
    assert found == {
        "ok": (S.SUCCESS, 1, 0, None),
        "bad": (S.FAILED, 2, 3, "exit code 3"),
        "after_bad": (S.UPSTREAM_FAILED, 0, None, "upstream task 'bad' did not succeed"),
        "slow": (S.FAILED, 1, -signal.SIGTERM, "timed out after 300ms"),
    }
    assert await still_running(bench.pids()) == []


async def test_keep_artifacts_logs_removes_project_and_data_but_keeps_run_json_and_logs(
    bench: Bench,
) -> None:
    write_scripts(bench.project, {"make.sh": 'echo made > "$PIT_DATA_DIR/out.txt"\n'})

    record = await bench.run(dag(task("make")), keep_artifacts=("logs",))

    paths = bench.paths
    assert record.state is RunState.SUCCESS
    assert not paths.project.exists()
    assert not paths.data.exists()
    assert paths.manifest.is_file()
    assert paths.log("make").is_file()
    assert read_manifest(paths.manifest).state is RunState.SUCCESS


async def test_keeping_every_artifact_keeps_the_data_a_task_wrote(bench: Bench) -> None:
    write_scripts(bench.project, {"make.sh": 'echo made > "$PIT_DATA_DIR/out.txt"\n'})

    await bench.run(dag(task("make")))

    assert bench.paths.data.joinpath("out.txt").read_text() == "made\n"
    assert bench.paths.project.joinpath("make.sh").is_file()


# --- live output ----------------------------------------------------------------------------


async def test_live_output_sends_every_chunk_and_the_log_still_has_everything(
    bench: Bench,
) -> None:
    write_scripts(
        bench.project,
        {
            "chatty.sh": """\
                for i in 1 2 3; do echo "line $i"; echo "warn $i" >&2; done
                head -c 300000 /dev/zero | tr '\\0' x
                echo
                echo done
                """,
            "quiet.sh": "echo quiet\n",
        },
    )
    chunks: list[TaskOutput] = []

    record = await bench.run(dag(task("chatty"), task("quiet")), live_output=chunks)

    assert record.state is RunState.SUCCESS
    for name in ("chatty", "quiet"):
        header, body = bench.paths.log(name).read_bytes().split(b"\n", 1)
        assert header.startswith(b"=== attempt 1/1")
        assert b"".join(c.data for c in chunks if c.task == name) == body
    chatty = bench.log("chatty")
    assert "line 1\nwarn 1\nline 2\nwarn 2\nline 3\nwarn 3\n" in chatty
    assert "x" * 300000 + "\ndone\n" in chatty
    assert {c.task for c in chunks} == {"chatty", "quiet"}


# --- a command that cannot start ------------------------------------------------------------


async def test_a_command_that_does_not_exist_fails_its_task_with_a_clear_error(
    bench: Bench,
) -> None:
    write_scripts(bench.project, {"job.sh": "echo hi\n", "next.sh": "echo hi\n"})
    missing = Runner(kind=RunnerKind.CUSTOM, prefix=("/nonexistent/bin",))

    record = await bench.run(dag(task("job", runner=missing), task("next", "job")))

    job = task_record(record, "job")
    assert job.state is S.FAILED
    assert job.exit_code is None
    assert job.error == "cannot start /nonexistent/bin: No such file or directory"
    assert f"pit: {job.error}" in bench.log("job")
    assert task_record(record, "next").state is S.UPSTREAM_FAILED
    assert record.state is RunState.FAILED
    assert read_manifest(bench.paths.manifest) == record


# --- stopping a run -------------------------------------------------------------------------


async def _start_run(
    bench: Bench,
    spec: DagSpec,
    nursery: trio.Nursery,
    records: list[RunRecord],
    **options: object,
) -> StartedRun:
    """Start a run in `nursery`, to send it commands; its final record goes to `records`."""

    async def run(task_status: trio.TaskStatus[StartedRun]) -> None:
        records.append(
            await execute_run(
                bench.request(spec, **options),
                clock=FixedClock(T0),
                env=bench.env,
                task_status=task_status,
            )
        )

    started: StartedRun = await nursery.start(run)
    return started


async def _wait_for_pids(bench: Bench, count: int) -> list[int]:
    """Wait (up to two seconds) until the task's script has recorded `count` PIDs."""
    for _ in range(100):
        if len(bench.pids()) >= count:
            break
        await trio.sleep(0.02)
    pids = bench.pids()
    assert len(pids) >= count, f"the task recorded {pids}, expected {count} PIDs"
    return pids


SLEEPER = """\
    sleep 300 &
    echo $! >> "$PIDS"
    echo $$ >> "$PIDS"
    sleep 300
    """


async def test_cancel_run_stops_running_tasks_and_skips_pending_ones(
    bench: Bench,
) -> None:
    write_scripts(bench.project, {"sleeper.sh": SLEEPER, "after.sh": "echo no\n"})
    records: list[RunRecord] = []

    async with bounded_nursery() as nursery:
        started = await _start_run(
            bench, dag(task("sleeper"), task("after", "sleeper")), nursery, records
        )
        pids = await _wait_for_pids(bench, 2)
        async with started.handle.inbox:
            await started.handle.inbox.send(CancelRun())

    (record,) = records
    assert record.state is RunState.CANCELLED
    assert {t.name: (t.state, t.error) for t in record.tasks} == {
        "sleeper": (S.FAILED, "cancelled"),
        "after": (S.SKIPPED, "cancelled"),
    }
    assert await still_running(pids) == []
    assert read_manifest(bench.paths.manifest) == record


async def test_a_second_cancel_with_kill_cuts_the_grace_period_short(
    bench: Bench,
) -> None:
    write_scripts(bench.project, {"stubborn.sh": "trap '' TERM\n" + textwrap.dedent(SLEEPER)})
    records: list[RunRecord] = []

    async with bounded_nursery() as nursery:
        started = await _start_run(bench, dag(task("stubborn")), nursery, records, grace=60.0)
        pids = await _wait_for_pids(bench, 2)
        async with started.handle.inbox:
            await started.handle.inbox.send(CancelRun())
            await trio.sleep(0.2)
            assert all(is_running(pid) for pid in pids), "SIGTERM is ignored: still running"
            stopped_at = trio.current_time()
            await started.handle.inbox.send(CancelRun(kill=True))
    elapsed = trio.current_time() - stopped_at

    (record,) = records
    assert elapsed < 2.0
    stubborn = task_record(record, "stubborn")
    assert (stubborn.state, stubborn.error, stubborn.exit_code) == (
        S.FAILED,
        "cancelled",
        -signal.SIGKILL,
    )
    assert record.state is RunState.CANCELLED
    assert await still_running(pids) == []


async def test_the_dag_timeout_stops_real_processes(bench: Bench) -> None:
    write_scripts(bench.project, {"sleeper.sh": SLEEPER, "after.sh": "echo no\n"})

    record = await bench.run(dag(task("sleeper"), task("after", "sleeper"), timeout=0.5))

    assert record.state is RunState.FAILED
    assert {t.name: (t.state, t.error) for t in record.tasks} == {
        "sleeper": (S.FAILED, "run timed out after 500ms"),
        "after": (S.SKIPPED, "run timed out after 500ms"),
    }
    assert await still_running(bench.pids()) == []


async def test_an_outer_cancellation_leaves_no_process_and_run_json_says_cancelled(
    bench: Bench,
) -> None:
    write_scripts(bench.project, {"sleeper.sh": SLEEPER, "after.sh": "echo no\n"})
    spec = dag(task("sleeper"), task("after", "sleeper"))

    async with bounded_nursery() as nursery:
        nursery.start_soon(
            functools.partial(execute_run, bench.request(spec), clock=FixedClock(T0), env=bench.env)
        )
        pids = await _wait_for_pids(bench, 2)
        nursery.cancel_scope.cancel()

    assert await still_running(pids) == []
    manifest = read_manifest(bench.paths.manifest)
    assert manifest.state is RunState.CANCELLED
    assert {t.name: (t.state, t.error) for t in manifest.tasks} == {
        "sleeper": (S.FAILED, "cancelled"),
        "after": (S.SKIPPED, "cancelled"),
    }
