"""run.json's text, made of its tasks' cached texts: the same JSON as the record says, however
its tasks changed since the text was last made."""

from __future__ import annotations

import datetime as dt
import json

import attrs

from pit.messages.run import Attempt, RunOwner, RunRecord, TaskRecord
from pit.spec.states import RunState, TaskState

AT = dt.datetime(2026, 12, 3, 14, 0, tzinfo=dt.UTC)


def record() -> RunRecord:
    tasks = (
        TaskRecord(name="extract", state=TaskState.SUCCESS, attempts=1, started_at=AT),
        TaskRecord(
            name="load",
            state=TaskState.RUNNING,
            attempts=2,
            history=(Attempt(number=1, started_at=AT, ended_at=AT, exit_code=1, error="x"),),
            pool="db",
            worker="tcp://w:1",
        ),
        TaskRecord(name='report \u00e9"quoted"', hook="on_failure: ok"),
    )
    return RunRecord(
        run_id="20261203T140000-ab12",
        dag="etl",
        trigger="manual",
        state=RunState.RUNNING,
        started_at=AT,
        tasks=tasks,
        owner=RunOwner(host="h", pid=1, boot_id="b", started=2),
        params={"day": "2026-12-03", "n": 3},
        code_version="sha256:00",
    )


def test_the_text_is_the_records_json_key_for_key() -> None:
    first = record()
    assert first.json_text() == json.dumps(first.to_json())
    assert list(json.loads(first.json_text())) == list(first.to_json())  # the same order


def test_a_task_changed_since_the_last_text_is_written_as_it_is_now() -> None:
    first = record()
    first.json_text()  # every task's text made
    done = attrs.evolve(first.tasks[1], state=TaskState.SUCCESS, ended_at=AT, exit_code=0)
    later = attrs.evolve(first, tasks=(first.tasks[0], done, first.tasks[2]))
    assert json.loads(later.json_text())["tasks"][1]["state"] == "success"
    assert later.json_text() == json.dumps(later.to_json())
