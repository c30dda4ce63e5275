"""A pit bug in one trigger or in handling one request ends nothing else in pit serve."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import attrs
import pytest
import trio

import pit.actors.accepted
from pit.actors.triggers import TRIGGER_RESTART, dag_triggers, restarting
from pit.messages.trigger import RunRequested, SupervisorInbox
from pit.messages.webhook import RunAccepted, RunRejected
from pit.spec.dag import DagSpec, Runner, RunnerKind, TaskSpec
from pit.spec.states import RunState
from tests.conftest import Workspace

from .test_cron_trigger import TrioWallClock
from .test_supervisor import serving


async def test_a_trigger_that_fails_is_logged_and_started_again(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[float] = []

    async def flaky() -> None:
        calls.append(trio.current_time())
        if len(calls) < 3:
            raise KeyError("a bug in a trigger")

    await restarting("etl", flaky)

    assert len(calls) == 3
    assert calls[1] - calls[0] == pytest.approx(TRIGGER_RESTART)
    assert calls[2] - calls[1] == pytest.approx(2 * TRIGGER_RESTART)
    assert caplog.text.count("a trigger failed (a pit bug)") == 2
    assert "KeyError: 'a bug in a trigger'" in caplog.text


@pytest.mark.slow
async def test_a_bug_handling_one_request_answers_it_and_serves_the_next(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    workspace.shell_project("etl", {"work": ":\n"}, dag_keys='overlap = "allow"')
    real_claim = pit.actors.accepted.claim_run_dir
    bugs = [ZeroDivisionError("a bug in pit")]

    def claim_with_one_bug(*args):  # type: ignore[no-untyped-def]
        if bugs:
            raise bugs.pop()
        return real_claim(*args)

    monkeypatch.setattr(pit.actors.accepted, "claim_run_dir", claim_with_one_bug)
    async with serving(workspace.root) as served:
        first = await served.ask("etl")
        second = await served.ask("etl")
        ended = await second.end()

    assert isinstance(first.answer, RunRejected)
    assert first.answer.message == "internal error in pit; see its log"
    assert isinstance(second.answer, RunAccepted)
    assert ended.state is RunState.SUCCESS
    assert "ZeroDivisionError: a bug in pit" in caplog.text


async def test_a_restarted_trigger_is_a_fresh_one_that_can_still_reach_the_supervisor(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    """A trigger closes its channel to the supervisor when it ends, so a restart after a bug
    must build a new one (running the same one again failed at its first send)."""
    task = TaskSpec(name="t", script="t.sh", runner=Runner(kind=RunnerKind.BASH))
    dag = DagSpec(name="tick", tasks=(task,), schedule="0 6 * * *")
    send, inbox = trio.open_memory_channel[SupervisorInbox](10)
    clock = TrioWallClock(start=dt.datetime(2026, 1, 1, 5, 59, 59, tzinfo=dt.UTC))
    (start,) = dag_triggers(
        attrs.evolve(dag, timezone="UTC"),
        root=tmp_path,
        runs_dir=tmp_path / "runs",
        secrets=None,
        clock=clock,
        supervisor=send,
        recover=True,
    )

    for _ in range(2):  # the first run of the trigger, then its restart (a day later)
        with trio.move_on_after(24 * 3600):
            await start()
        request = inbox.receive_nowait()
        assert isinstance(request, RunRequested)
        assert request.dag == "tick"
