"""Whole runs of real `.sh` tasks through `execute_run`: process groups, logs, run folders.

These need real time and real processes, so they are marked `slow`; each takes about a second.
Scripts record the PIDs they start in `$PIDS`, a file outside the run, so a test can check that no
process of a task outlived it (and the `bench` fixture kills any that did, test passed or not).
"""

from __future__ import annotations

import errno
import functools
import os
import signal
import stat
import textwrap

import pytest
import trio

from pit.actors.execute import execute_run
from pit.clock import FixedClock
from pit.messages.run import CancelRun, RunRecord
from pit.messages.task import TaskOutput
from pit.spec.dag import Runner, RunnerKind
from pit.spec.states import RunState, TaskState
from pit.store.rundir import read_manifest

from .loglines import log_lines
from .processbench import (
    GRACE,
    RUN_ID,
    T0,
    Bench,
    bounded_nursery,
    dag,
    is_running,
    start_run,
    still_running,
    task,
    task_record,
    wait_for_pids,
    write_scripts,
)

pytestmark = pytest.mark.slow

S = TaskState


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
        started = await start_run(
            bench, dag(task("sleeper"), task("after", "sleeper")), nursery, records
        )
        pids = await wait_for_pids(bench, 2)
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
        started = await start_run(bench, dag(task("stubborn")), nursery, records, grace=60.0)
        pids = await wait_for_pids(bench, 2)
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
        pids = await wait_for_pids(bench, 2)
        nursery.cancel_scope.cancel()

    assert await still_running(pids) == []
    manifest = read_manifest(bench.paths.manifest)
    assert manifest.state is RunState.CANCELLED
    assert {t.name: (t.state, t.error) for t in manifest.tasks} == {
        "sleeper": (S.FAILED, "cancelled"),
        "after": (S.SKIPPED, "cancelled"),
    }


# --- kernels without pidfd_open (before Linux 5.3: RHEL 8's 4.18, valgrind) --------------------


async def test_tasks_run_and_time_out_where_the_kernel_has_no_pidfd_open(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_pidfd_open(pid: int, flags: int = 0) -> int:
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", no_pidfd_open)
    write_scripts(
        bench.project, {"ok.sh": "echo fine\n", "slow.sh": 'echo $$ >> "$PIDS"\nsleep 300\n'}
    )

    record = await bench.run(dag(task("ok"), task("slow", timeout=0.3)))

    found = {t.name: (t.state, t.exit_code) for t in record.tasks}
    assert found == {"ok": (S.SUCCESS, 0), "slow": (S.FAILED, -signal.SIGTERM)}
    assert await still_running(bench.pids()) == []
