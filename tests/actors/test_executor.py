"""The executor process, driven as the supervisor drives it (`ExecutorProcess`), with real runs:
an executor that dies takes its runs down truthfully and is replaced; a signal meant for the
whole service does not cut its runs short."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from pit.actors.executor_process import ExecutorProcess
from pit.actors.frames import FrameError, FrameReader, encode
from pit.actors.plans import plan_run
from pit.cli import executor
from pit.clock import SystemClock
from pit.messages.executor import CancelExecution, ExecutorSetup
from pit.messages.run import RunEnded
from pit.messages.trigger import SupervisorInbox
from pit.spec.load import load_workspace
from pit.spec.states import RunState
from pit.store.rundir import RunPaths, create_run_dir, read_manifest
from tests.conftest import Workspace

pytestmark = pytest.mark.slow

HANG_GUARD = 30.0


class Driver:
    """An ExecutorProcess, and the supervisor inbox it reports to."""

    def __init__(
        self, workspace: Workspace, process: ExecutorProcess, inbox: trio.MemoryReceiveChannel
    ) -> None:
        self.workspace = workspace
        self.process = process
        self.inbox = inbox

    def execute(self, dag: str) -> RunPaths:
        loaded = load_workspace(self.workspace.root)
        project = next(p for p in loaded.projects if p.dag and p.dag.name == dag)
        paths = create_run_dir(self.workspace.root / "runs", dag, SystemClock().now())
        self.process.execute(plan_run(project, loaded, trigger="test"), paths)
        return paths

    async def ended(self) -> RunEnded:
        message: SupervisorInbox = await self.inbox.receive()
        assert isinstance(message, RunEnded), message
        return message


@pytest.fixture
async def driver(workspace: Workspace) -> AsyncIterator[Driver]:
    send, inbox = trio.open_memory_channel[SupervisorInbox](16)
    process = ExecutorProcess(
        command=executor.COMMAND,
        setup=ExecutorSetup(env=os.environ, secrets=None),
        supervisor=send,
        clock=SystemClock(),
        restart_delay=0.1,
    )
    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            await nursery.start(process.run)
            yield Driver(workspace, process, inbox)
            process.close()


async def wait_for(path: Path) -> None:
    # A file the task writes (non-empty once written).
    while not await trio.Path(path).exists() or not path.read_text():  # noqa: ASYNC110, ASYNC240
        await trio.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended; its parent (init here) reaps it


async def test_an_executor_that_dies_fails_its_runs_and_is_replaced(
    driver: Driver, workspace: Workspace, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    workspace.shell_project("slow", {"work": f"sleep 300 &\necho $$ $! > {started}\nwait\n"})
    workspace.shell_project("quick", {"work": "echo fine\n"})
    paths = driver.execute("slow")
    await wait_for(started)
    first = driver.process.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)

    ended = await driver.ended()
    assert (ended.run_id, ended.dag, ended.state) == (paths.run_id, "slow", RunState.FAILED)
    task_pids = [int(pid) for pid in started.read_text().split()]
    with trio.move_on_after(5):  # SIGKILLed already: a moment to be gone
        while any(alive(pid) for pid in task_pids):  # noqa: ASYNC110
            await trio.sleep(0.02)
    assert [pid for pid in task_pids if alive(pid)] == [], "the task outlived its executor"
    record = read_manifest(paths.manifest)
    assert record.state is RunState.FAILED
    assert "executor process ended unexpectedly" in (record.error or "")
    # Failed if run.json had it running already, else skipped: it never ran to its end.
    assert [(t.name, t.state.value in ("failed", "skipped")) for t in record.tasks] == [
        ("work", True)
    ]

    again = driver.execute("quick")
    ended = await driver.ended()
    assert (ended.run_id, ended.state) == (again.run_id, RunState.SUCCESS)
    assert driver.process.pid not in (None, first)


async def test_sigterm_to_the_executor_alone_does_not_stop_its_runs(
    driver: Driver, workspace: Workspace, tmp_path: Path
) -> None:
    """systemd signals every process of a unit; pit serve, not its executor, decides."""
    gate = tmp_path / "gate"
    started = tmp_path / "started"
    script = f"echo $$ > {started}\nwhile [ ! -e {gate} ]; do sleep 0.02; done\n"
    workspace.shell_project("gated", {"work": script})
    paths = driver.execute("gated")
    await wait_for(started)
    assert driver.process.pid is not None
    os.kill(driver.process.pid, signal.SIGTERM)
    await trio.sleep(0.3)
    gate.touch()
    ended = await driver.ended()
    assert (ended.run_id, ended.state) == (paths.run_id, RunState.SUCCESS)


@given(
    messages=st.lists(st.text(max_size=300), max_size=8),
    cuts=st.lists(st.integers(min_value=1, max_value=97), max_size=40),
)
@settings(deadline=None)
def test_frames_come_back_whole_however_the_stream_cuts_them(
    messages: list[str], cuts: list[int]
) -> None:
    """Several frames in one read, a frame over several reads: each message comes back once,
    in order, then None at the end."""
    sent = [CancelExecution(run_id=text) for text in messages]
    data = b"".join(encode(message) for message in sent)

    async def exchange() -> list[object]:
        send, receive = trio.testing.memory_stream_one_way_pair()
        received: list[object] = []

        async def write() -> None:
            start = 0
            for cut in cuts:
                await send.send_all(data[start : start + cut])
                start += cut
            await send.send_all(data[start:])
            await send.aclose()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(write)
            frames = FrameReader.to_executor(receive)
            while (message := await frames.receive()) is not None:
                received.append(message)
        return received

    assert trio.run(exchange) == sent


async def test_a_message_the_other_side_may_not_send_is_a_frame_error() -> None:
    send, receive = trio.testing.memory_stream_one_way_pair()
    await send.send_all(encode(CancelExecution(run_id="r")))
    with pytest.raises(FrameError, match="unexpected message"):
        await FrameReader.from_executor(receive).receive()
