"""The supervisor of `pit serve`, in real time with real `.sh` tasks: overlap policies, the
`max_active_runs` cap, Reload, Stop, and the requests it must survive.

Each test starts a `Supervisor` on a workspace of its own (the `workspace` fixture) and talks to
it as a trigger does: `RunRequested` into its inbox, the answer and the run's end on channels of
the test's own. Runs that must stay active wait on a gate file the test creates (`Gate`), so no
test depends on a task's sleep being long enough.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from pit.actors.supervisor import Supervisor
from pit.cli import executor
from pit.clock import SystemClock
from pit.messages.run import RunEnded
from pit.messages.trigger import PauseRequested, Reload, RunRequested, Stop, SupervisorHandle
from pit.messages.webhook import RunAccepted, RunRejected, RunRequestAnswer
from pit.spec.load import load_workspace
from pit.spec.secrets import parse_secrets
from pit.spec.states import RunState
from pit.store.paused import read_paused
from pit.store.rundir import read_manifest
from tests.conftest import Workspace

pytestmark = pytest.mark.slow

HANG_GUARD = 30.0
"""Seconds a whole test may take before it is called a hang (each takes one or two)."""

QUIET = 0.3
"""Seconds to watch for something that must not happen (a queued run starting early)."""


class Gate:
    """A file-based gate for bash tasks: `script()` records the run's start (its id and pid)
    in `folder`, then waits until the gate is opened."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir()

    def script(self, then: str = "") -> str:
        return (
            f'echo "$PIT_RUN_ID $$" >> {self.folder}/started\n'
            f"while [ ! -e {self.folder}/open ]; do sleep 0.02; done\n"
            f"{then}\n"
        )

    def open(self) -> None:
        (self.folder / "open").touch()

    def started(self) -> list[str]:
        """Run ids of the runs whose task has started, in order."""
        path = self.folder / "started"
        return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []

    def pids(self) -> list[int]:
        path = self.folder / "started"
        return [int(line.split()[1]) for line in path.read_text().splitlines()]


@attrs.define
class Asked:
    """One request: the supervisor's answer, and a channel told when the run ends."""

    answer: RunRequestAnswer
    ended: trio.MemoryReceiveChannel[RunEnded]

    @property
    def run_id(self) -> str:
        assert isinstance(self.answer, RunAccepted), f"expected accepted, got {self.answer}"
        return self.answer.run_id

    async def end(self) -> RunEnded:
        with trio.fail_after(HANG_GUARD):
            return await self.ended.receive()


@attrs.define
class Served:
    supervisor: Supervisor
    handle: SupervisorHandle
    stopped: trio.Event
    """Set when `Supervisor.run` has returned."""

    async def ask(self, dag: str, trigger: str = "webhook") -> Asked:
        # Buffered (1 each): a test reading the answer late must not hold the supervisor up.
        reply_send, reply = trio.open_memory_channel[RunRequestAnswer](1)
        ended_send, ended = trio.open_memory_channel[RunEnded](1)
        request = RunRequested(dag=dag, trigger=trigger, reply=reply_send, ended=ended_send)
        await self.handle.inbox.send(request)
        with trio.fail_after(HANG_GUARD):
            answer = await reply.receive()
        return Asked(answer, ended)

    async def pause(self, dag: str, *, pause: bool = True) -> bool:
        reply_send, reply = trio.open_memory_channel[bool](1)
        await self.handle.inbox.send(
            PauseRequested(dag=dag, pause=pause, by="a test", reply=reply_send)
        )
        with trio.fail_after(HANG_GUARD):
            return await reply.receive()

    async def send(self, message: Reload | Stop | RunRequested) -> None:
        await self.handle.inbox.send(message)

    async def wait_stopped(self) -> None:
        with trio.fail_after(HANG_GUARD):
            await self.stopped.wait()


@contextlib.asynccontextmanager
async def serving(root: Path, **options: Any) -> AsyncIterator[Served]:
    """A Supervisor on `root`, wired as `pit serve` wires it (its cap and grace from
    pit_config.toml unless given); stopped at once afterwards if the test did not stop it."""
    config = load_workspace(root).config
    options = {
        "secrets": None,
        "shutdown_grace": config.shutdown_grace,
        "max_active_runs": config.max_active_runs,
        **options,
    }
    supervisor = Supervisor(
        root=root,
        clock=SystemClock(),
        env=os.environ,
        executor=executor.COMMAND,
        **options,
    )
    stopped = trio.Event()

    async def supervise(task_status: trio.TaskStatus[SupervisorHandle]) -> None:
        await supervisor.run(task_status=task_status)
        stopped.set()

    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(supervise)
            served = Served(supervisor, handle, stopped)
            yield served
            if not stopped.is_set():
                await handle.inbox.send(Stop(now=True))
                await stopped.wait()


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition` (a file a task writes: no event to wait on) until it holds."""
    with trio.move_on_after(HANG_GUARD):
        while not condition():  # noqa: ASYNC110
            await trio.sleep(0.02)
        return
    pytest.fail(f"gave up after {HANG_GUARD:.0f}s waiting for {what}")


def manifest(workspace: Workspace, run_id: str) -> dict[str, Any]:
    return workspace.manifest(workspace.root / "runs" / run_id)


def times(workspace: Workspace, run_id: str) -> tuple[dt.datetime, dt.datetime]:
    record = manifest(workspace, run_id)
    return dt.datetime.fromisoformat(record["started_at"]), dt.datetime.fromisoformat(
        record["ended_at"]
    )


def rejected(asked: Asked, reason: str) -> bool:
    return isinstance(asked.answer, RunRejected) and asked.answer.reason == reason


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.fixture
def gate(tmp_path: Path) -> Gate:
    return Gate(tmp_path / "gate")


# --- runs, answers, ends ---------------------------------------------------------------------


async def test_the_run_id_answered_is_the_run_folder_and_the_run_ends_success(
    workspace: Workspace,
) -> None:
    workspace.shell_project("etl", {"extract": "echo extracted\n"})
    async with serving(workspace.root) as served:
        asked = await served.ask("etl")
        ended = await asked.end()

    assert (ended.run_id, ended.dag, ended.state) == (asked.run_id, "etl", RunState.SUCCESS)
    # The whole final record comes with it (run.json keeps times to the millisecond).
    written = read_manifest(workspace.root / "runs" / asked.run_id / "run.json")
    assert [t.name for t in ended.record.tasks] == [t.name for t in written.tasks]
    assert ended.record.state is written.state
    run = workspace.only_run("etl")
    assert run.name == asked.run_id
    record = workspace.manifest(run)
    assert (record["run_id"], record["trigger"], record["state"]) == (
        asked.run_id,
        "webhook",
        "success",
    )


async def test_a_failing_task_ends_the_run_failed(workspace: Workspace) -> None:
    workspace.shell_project("etl", {"extract": "exit 3\n"})
    async with serving(workspace.root) as served:
        asked = await served.ask("etl")
        ended = await asked.end()

    assert ended.state is RunState.FAILED
    assert manifest(workspace, asked.run_id)["state"] == "failed"


async def test_an_unknown_dag_is_rejected(workspace: Workspace) -> None:
    workspace.shell_project("etl", {"extract": ":\n"})
    async with serving(workspace.root) as served:
        asked = await served.ask("elt")

    assert isinstance(asked.answer, RunRejected)
    assert "elt" in asked.answer.message
    assert workspace.run_dirs("elt") == []


async def test_a_paused_dag_refuses_its_triggers_and_takes_runs_asked_by_hand(
    workspace: Workspace,
) -> None:
    workspace.shell_project("etl", {"extract": ":\n"}, dag_keys='schedule = "0 6 * * *"')
    async with serving(workspace.root) as served:
        assert await served.pause("etl") is True
        assert await served.pause("elt") is False  # no such DAG
        refused = [await served.ask("etl", trigger) for trigger in ("cron", "ftp", "webhook")]
        by_hand = await served.ask("etl", "api")
        await by_hand.end()
    assert all(rejected(asked, "paused") for asked in refused)
    assert read_paused(workspace.root)["etl"].by == "a test"

    async with serving(workspace.root) as served:  # the pause outlives pit serve
        assert rejected(await served.ask("etl", "cron"), "paused")
        assert await served.pause("etl", pause=False) is True
        resumed = await served.ask("etl", "cron")
        await resumed.end()
    assert read_paused(workspace.root) == {}


# --- overlap policies ------------------------------------------------------------------------


async def test_skip_rejects_a_second_run_while_one_is_active(
    workspace: Workspace, gate: Gate
) -> None:
    workspace.shell_project("etl", {"wait": gate.script()})  # overlap = "skip" by default
    async with serving(workspace.root) as served:
        first = await served.ask("etl")
        await until(lambda: gate.started() == [first.run_id], "the first run's task")
        second = await served.ask("etl")
        gate.open()
        assert (await first.end()).state is RunState.SUCCESS
        third = await served.ask("etl")  # nothing active any more
        assert (await third.end()).state is RunState.SUCCESS

    assert rejected(second, "overlap"), second.answer
    assert [r.name for r in workspace.run_dirs("etl")] == [first.run_id, third.run_id]


async def test_queue_keeps_one_waiting_and_runs_it_after_the_active_one(
    workspace: Workspace, gate: Gate
) -> None:
    workspace.shell_project("etl", {"wait": gate.script()}, dag_keys='overlap = "queue"')
    async with serving(workspace.root) as served:
        first = await served.ask("etl")
        await until(lambda: gate.started() == [first.run_id], "the first run's task")
        second = await served.ask("etl")
        third = await served.ask("etl")
        await trio.sleep(QUIET)
        assert gate.started() == [first.run_id], "the queued run started before its turn"
        gate.open()
        ends = [await first.end(), await second.end()]

    assert isinstance(second.answer, RunAccepted)
    assert rejected(third, "overlap"), third.answer
    assert [e.state for e in ends] == [RunState.SUCCESS, RunState.SUCCESS]
    assert gate.started() == [first.run_id, second.run_id]
    assert times(workspace, first.run_id)[1] <= times(workspace, second.run_id)[0]


async def test_allow_runs_concurrently(workspace: Workspace, gate: Gate) -> None:
    workspace.shell_project("etl", {"wait": gate.script()}, dag_keys='overlap = "allow"')
    async with serving(workspace.root) as served:
        asked = [await served.ask("etl") for _ in range(3)]
        ids = {a.run_id for a in asked}
        await until(lambda: set(gate.started()) == ids, "three runs active at once")
        gate.open()
        ends = [await a.end() for a in asked]

    assert len(ids) == 3
    assert {e.state for e in ends} == {RunState.SUCCESS}


# --- max_active_runs -------------------------------------------------------------------------


async def test_max_active_runs_makes_a_second_dag_wait(workspace: Workspace, gate: Gate) -> None:
    workspace.config("max_active_runs = 1\n")
    for name in ("one", "two"):
        workspace.shell_project(name, {"wait": gate.script()}, dag_keys='overlap = "allow"')
    async with serving(workspace.root) as served:
        one = await served.ask("one")
        await until(lambda: gate.started() == [one.run_id], "the first run's task")
        two = await served.ask("two")
        await trio.sleep(QUIET)
        assert gate.started() == [one.run_id], "max_active_runs = 1, yet two runs are active"
        gate.open()
        ends = [await one.end(), await two.end()]

    assert isinstance(two.answer, RunAccepted)
    assert {e.state for e in ends} == {RunState.SUCCESS}
    assert times(workspace, one.run_id)[1] <= times(workspace, two.run_id)[0]


async def test_a_skip_dag_waiting_for_a_slot_is_not_accepted_twice(
    workspace: Workspace, gate: Gate, tmp_path: Path
) -> None:
    """`max_active_runs` must not undo `overlap = "skip"`: with both slots taken, a second
    request for a skip DAG that is already waiting for a slot is an overlap. Accepted, the two
    start together when the slots free up, and run concurrently."""
    workspace.config("max_active_runs = 2\n")
    workspace.shell_project("blocker", {"wait": gate.script()}, dag_keys='overlap = "allow"')
    workspace.shell_project("once", {"work": "sleep 0.5\n"})  # overlap = "skip"
    async with serving(workspace.root) as served:
        blockers = [await served.ask("blocker") for _ in range(2)]
        await until(lambda: len(gate.started()) == 2, "both slots taken")
        once = [await served.ask("once"), await served.ask("once")]
        gate.open()
        for asked in blockers:
            await asked.end()
        for asked in once:
            if isinstance(asked.answer, RunAccepted):
                await asked.end()

    accepted = [a.run_id for a in once if isinstance(a.answer, RunAccepted)]
    spans = sorted(times(workspace, run_id) for run_id in accepted)
    overlapping = [(a, b) for a, b in itertools.pairwise(spans) if b[0] < a[1]]
    assert not overlapping, f"two runs of skip DAG 'once' ran at the same time: {spans}"
    assert rejected(once[1], "overlap"), once[1].answer


async def test_a_queue_dag_waiting_for_a_slot_keeps_at_most_one_more_waiting(
    workspace: Workspace, gate: Gate
) -> None:
    """`overlap = "queue"` is at most one waiting: that holds when the DAG waits for a
    `max_active_runs` slot too."""
    workspace.config("max_active_runs = 1\n")
    workspace.shell_project("blocker", {"wait": gate.script()})
    workspace.shell_project("queued", {"work": ":\n"}, dag_keys='overlap = "queue"')
    async with serving(workspace.root) as served:
        blocker = await served.ask("blocker")
        await until(lambda: gate.started() == [blocker.run_id], "the slot taken")
        queued = [await served.ask("queued") for _ in range(3)]
        gate.open()
        await blocker.end()
        for asked in queued:
            if isinstance(asked.answer, RunAccepted):
                await asked.end()

    assert [isinstance(a.answer, RunAccepted) for a in queued] == [True, True, False]
    assert rejected(queued[2], "overlap"), queued[2].answer


# --- Stop ------------------------------------------------------------------------------------


async def test_stop_lets_the_active_run_finish_and_refuses_new_ones(
    workspace: Workspace, gate: Gate
) -> None:
    workspace.shell_project("etl", {"wait": gate.script()}, dag_keys='overlap = "allow"')
    async with serving(workspace.root, shutdown_grace=HANG_GUARD) as served:
        asked = await served.ask("etl")
        await until(lambda: gate.started() == [asked.run_id], "the run's task")
        await served.send(Stop())
        after_stop = await served.ask("etl")
        await trio.sleep(QUIET)
        assert not served.stopped.is_set(), "the supervisor returned with a run active"
        gate.open()
        ended = await asked.end()
        await served.wait_stopped()

    assert rejected(after_stop, "stopping"), after_stop.answer
    assert ended.state is RunState.SUCCESS
    assert manifest(workspace, asked.run_id)["state"] == "success"
    assert [r.name for r in workspace.run_dirs("etl")] == [asked.run_id]


async def test_stop_with_nothing_active_returns_at_once(workspace: Workspace) -> None:
    workspace.shell_project("etl", {"extract": ":\n"}, dag_keys='schedule = "* * * * *"')
    async with serving(workspace.root) as served:
        await served.send(Stop())
        with trio.fail_after(2):
            await served.stopped.wait()


async def test_stop_past_shutdown_grace_cancels_the_run(workspace: Workspace, gate: Gate) -> None:
    workspace.shell_project("etl", {"wait": gate.script()})
    async with serving(workspace.root, shutdown_grace=0.5) as served:
        asked = await served.ask("etl")
        await until(lambda: gate.started() == [asked.run_id], "the run's task")
        await served.send(Stop())
        ended = await asked.end()
        await served.wait_stopped()

    assert ended.state is RunState.CANCELLED
    assert manifest(workspace, asked.run_id)["state"] == "cancelled"
    assert not any(pid_alive(pid) for pid in gate.pids())


async def test_stop_now_cancels_at_once(workspace: Workspace, gate: Gate) -> None:
    workspace.shell_project("etl", {"wait": gate.script()})
    async with serving(workspace.root, shutdown_grace=HANG_GUARD) as served:
        asked = await served.ask("etl")
        await until(lambda: gate.started() == [asked.run_id], "the run's task")
        stop_sent = trio.current_time()
        await served.send(Stop(now=True))
        ended = await asked.end()
        await served.wait_stopped()
        took = trio.current_time() - stop_sent

    assert ended.state is RunState.CANCELLED
    assert manifest(workspace, asked.run_id)["state"] == "cancelled"
    assert took < 5, f"Stop(now=True) took {took:.1f}s"
    assert not any(pid_alive(pid) for pid in gate.pids())


async def test_stop_drops_a_queued_run_that_had_not_started(
    workspace: Workspace, gate: Gate
) -> None:
    workspace.shell_project("etl", {"wait": gate.script()}, dag_keys='overlap = "queue"')
    async with serving(workspace.root, shutdown_grace=HANG_GUARD) as served:
        first = await served.ask("etl")
        await until(lambda: gate.started() == [first.run_id], "the first run's task")
        queued = await served.ask("etl")
        await served.send(Stop())
        gate.open()
        await first.end()
        await served.wait_stopped()

    assert isinstance(queued.answer, RunAccepted)
    assert gate.started() == [first.run_id]
    # Accepted, so it ends with a record: cancelled, saying why.
    dropped = manifest(workspace, queued.run_id)
    assert dropped["state"] == "cancelled"
    assert dropped["error"] == "pit serve stopped before it started"
    assert workspace.task_states(workspace.root / "runs" / queued.run_id) == {"wait": "skipped"}
    assert (await queued.end()).state is RunState.CANCELLED


async def test_the_wait_list_is_bounded_and_a_request_past_it_is_refused_busy(
    workspace: Workspace, gate: Gate
) -> None:
    workspace.shell_project("etl", {"wait": gate.script()}, dag_keys='overlap = "allow"')
    async with serving(workspace.root, max_active_runs=1, max_queued_runs=2) as served:
        running = await served.ask("etl")
        waiting = [await served.ask("etl"), await served.ask("etl")]
        refused = await served.ask("etl")
        gate.open()
        ends = [await asked.end() for asked in (running, *waiting)]

    assert rejected(refused, "busy")
    assert isinstance(refused.answer, RunRejected)
    assert "max_queued_runs" in refused.answer.message
    assert [e.state for e in ends] == [RunState.SUCCESS] * 3


async def test_a_dag_with_a_schedule_and_an_ftp_watch_is_served(workspace: Workspace) -> None:
    """Both triggers of one DAG live under one cancel scope (it crashed pit serve at start)."""
    workspace.shell_project(
        "both",
        {"work": ":\n"},
        dag_keys='schedule = "0 6 * * *"\n'
        "[dag.ftp_watch]\n"
        'secret = "drop"\ndirectory = "/in"\npattern = "*.csv"\n',
    )
    secrets, problems = parse_secrets(
        '[global]\ndrop = { host = "127.0.0.1", user = "u", password = "p", port = 9 }\n',
        "secrets.toml",
    )
    assert problems == []
    async with serving(workspace.root, secrets=secrets) as served:
        await served.send(Reload())  # restarts nothing, but must not crash either
        asked = await served.ask("both")
        ended = await asked.end()

    assert ended.state is RunState.SUCCESS


async def test_reload_with_an_unloadable_timezone_keeps_serving(workspace: Workspace) -> None:
    workspace.shell_project("etl", {"extract": ":\n"}, dag_keys='schedule = "0 6 * * *"')
    async with serving(workspace.root) as served:
        workspace.shell_project(
            "etl", {"extract": ":\n"}, dag_keys='schedule = "0 6 * * *"\ntimezone = "Europe"'
        )
        await served.send(Reload())
        asked = await served.ask("etl")
        ended = await asked.end()

    assert ended.state is RunState.SUCCESS


# --- Reload ----------------------------------------------------------------------------------


async def test_reload_adds_a_new_project(workspace: Workspace) -> None:
    workspace.shell_project("etl", {"extract": ":\n"})
    async with serving(workspace.root) as served:
        before = await served.ask("late")
        workspace.shell_project("late", {"report": "echo late\n"})
        await served.send(Reload())
        asked = await served.ask("late")
        ended = await asked.end()

    assert isinstance(before.answer, RunRejected)
    assert ended.state is RunState.SUCCESS


@pytest.mark.parametrize("folder", ["nightly", "nightly-folder"])
async def test_reload_with_an_invalid_edit_keeps_the_last_good_config(
    workspace: Workspace, folder: str
) -> None:
    """A broken pit.toml must not take its DAG away: the last good one keeps running. Whether
    or not the project's folder is named like its DAG (pit does not require it)."""
    good = '[dag]\nname = "nightly"\n\n[[tasks]]\nname = "good"\nscript = "tasks/good.sh"\n'
    workspace.project(folder, good, {"tasks/good.sh": "echo good\n"})
    async with serving(workspace.root) as served:
        workspace.write(f"projects/{folder}/pit.toml", "[dag\nname = 'nightly'\n")
        await served.send(Reload())
        asked = await served.ask("nightly")
        assert isinstance(asked.answer, RunAccepted), asked.answer
        ended = await asked.end()

    assert ended.state is RunState.SUCCESS
    assert workspace.task_states(workspace.root / "runs" / asked.run_id) == {"good": "success"}


async def test_reload_forgets_a_removed_project(workspace: Workspace) -> None:
    workspace.shell_project("etl", {"extract": ":\n"})
    workspace.shell_project("gone", {"extract": ":\n"})
    async with serving(workspace.root) as served:
        shutil.rmtree(workspace.root / "projects" / "gone")
        await served.send(Reload())
        gone = await served.ask("gone")
        still = await served.ask("etl")
        await still.end()

    assert isinstance(gone.answer, RunRejected)
    assert workspace.run_dirs("gone") == []


async def test_reload_with_an_invalid_pit_config_keeps_the_last_good_one(
    workspace: Workspace,
) -> None:
    """Like a broken pit.toml, a broken pit_config.toml keeps the configuration that works:
    here the runs must not start landing in the default runs/ folder."""
    workspace.config('runs_dir = "history"\n')
    workspace.shell_project("etl", {"extract": ":\n"})
    async with serving(workspace.root) as served:
        workspace.config('runs_dir = "history\n')  # unterminated string
        await served.send(Reload())
        asked = await served.ask("etl")
        await asked.end()

    assert (workspace.root / "history" / asked.run_id / "run.json").is_file()
    assert not (workspace.root / "runs").exists()


async def test_reload_removing_a_dag_with_a_queued_run_does_not_bring_pit_down(
    workspace: Workspace, gate: Gate
) -> None:
    """The queued run's DAG is gone when its turn comes: it is dropped (or run with the config
    it was accepted under), and the supervisor goes on serving the other DAGs."""
    workspace.shell_project("etl", {"wait": gate.script()}, dag_keys='overlap = "queue"')
    workspace.shell_project("other", {"extract": ":\n"})
    async with serving(workspace.root) as served:
        first = await served.ask("etl")
        await until(lambda: gate.started() == [first.run_id], "the first run's task")
        queued = await served.ask("etl")
        shutil.rmtree(workspace.root / "projects" / "etl")
        await served.send(Reload())
        gate.open()
        assert (await first.end()).state is RunState.SUCCESS
        other = await served.ask("other")
        assert (await other.end()).state is RunState.SUCCESS

    assert isinstance(queued.answer, RunAccepted)


# --- requests it must survive ----------------------------------------------------------------


async def test_a_project_folder_gone_before_its_run_fails_the_run_not_pit(
    workspace: Workspace,
) -> None:
    """The folder is moved away (a fresh `git clone` elsewhere) before anyone sends SIGHUP: the
    snapshot fails, the run is recorded failed, and the other DAGs go on."""
    workspace.shell_project("etl", {"extract": ":\n"})
    workspace.shell_project("other", {"extract": ":\n"})
    async with serving(workspace.root) as served:
        shutil.rmtree(workspace.root / "projects" / "etl")
        asked = await served.ask("etl")
        ended = await asked.end()
        other = await served.ask("other")
        assert (await other.end()).state is RunState.SUCCESS

    assert ended.state is RunState.FAILED
    record = manifest(workspace, asked.run_id)
    assert record["state"] == "failed"
    assert "snapshot" in record["error"]


async def test_a_requester_gone_before_the_answer_does_not_bring_pit_down(
    workspace: Workspace,
) -> None:
    """A webhook client that hangs up while its request waits in the inbox: the web handler is
    cancelled and its reply channel closed before the supervisor answers."""
    workspace.shell_project("etl", {"extract": ":\n"}, dag_keys='overlap = "allow"')
    async with serving(workspace.root) as served:
        reply_send, reply = trio.open_memory_channel[RunRequestAnswer](1)
        reply.close()
        await served.send(RunRequested(dag="etl", trigger="webhook", reply=reply_send))
        asked = await served.ask("etl")
        assert (await asked.end()).state is RunState.SUCCESS


async def test_a_requester_gone_before_the_run_ends_does_not_bring_pit_down(
    workspace: Workspace, gate: Gate
) -> None:
    """A trigger that asked to be told of the end (an FTP watch) and was cancelled meanwhile
    (a reload): its closed channel must not crash the supervisor when the run ends."""
    workspace.shell_project("etl", {"wait": gate.script()}, dag_keys='overlap = "allow"')
    async with serving(workspace.root) as served:
        gone = await served.ask("etl")
        gone.ended.close()
        await until(lambda: gate.started() == [gone.run_id], "the run's task")
        gate.open()
        await trio.sleep(QUIET)  # the run ends
        asked = await served.ask("etl")
        assert (await asked.end()).state is RunState.SUCCESS

    assert manifest(workspace, gone.run_id)["state"] == "success"
