"""Whole runs of real `.sh` tasks through `execute_run`, for the tests of real processes.

Scripts record the PIDs they start in `$PIDS`, a file outside the run, so a test can check that no
process of a task outlived it (and the `bench` fixture, in conftest.py, kills any that did).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import textwrap
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import attrs
import trio

from pit.actors.execute import StartedRun, execute_run
from pit.clock import FixedClock
from pit.messages.run import RunPlan, RunRecord, TaskRecord
from pit.messages.task import TaskOutput
from pit.spec.dag import DagSpec, Runner, RunnerKind, TaskSpec
from pit.store.rundir import RunPaths

T0 = dt.datetime(2024, 5, 1, 6, 0, tzinfo=dt.UTC)
RUN_ID = "20240501_060000.000_demo"
GRACE = 0.5
HANG_LIMIT = 10.0
"""Seconds after which a run that should have ended fails its test (a stop that never came)."""
BASH = Runner(kind=RunnerKind.BASH)


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

    def request(self, spec: DagSpec, **options: object) -> RunPlan:
        options.setdefault("grace", GRACE)
        return RunPlan(
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
        """Run `spec` to its end; `options` go to the `RunPlan`. Given a `live_output` list,
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


def started_by_a_test_script(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return command.split(b"\0")[0] in (b"sleep", b"bash")


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


async def start_run(
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


async def wait_for_pids(bench: Bench, count: int) -> list[int]:
    """Wait (up to two seconds) until the task's script has recorded `count` PIDs."""
    for _ in range(100):
        if len(bench.pids()) >= count:
            break
        await trio.sleep(0.02)
    pids = bench.pids()
    assert len(pids) >= count, f"the task recorded {pids}, expected {count} PIDs"
    return pids
