"""The keys with a fixed set of values (`overlap`, a task's `type`, a load's `mode`) read into
enums; a value outside the set is a problem that names the choices, and the rest of the file is
still read."""

from __future__ import annotations

import json
import pickle

import pytest

from pit.spec.dag import LoadMode, Overlap, TaskType

from .tomltext import dag, parse, parse_ok, pit_toml, task, the_problem


@pytest.mark.parametrize(
    ("written", "read"),
    [("skip", Overlap.SKIP), ("queue", Overlap.QUEUE), ("allow", Overlap.ALLOW)],
)
def test_overlap_reads_into_its_enum(written: str, read: Overlap) -> None:
    assert parse_ok(pit_toml(dag(overlap=written), task("a"))).overlap is read


def test_overlap_defaults_to_skip_and_wait_is_queue() -> None:
    assert parse_ok(pit_toml(dag(), task("a"))).overlap is Overlap.SKIP
    assert parse_ok(pit_toml(dag(overlap="wait"), task("a"))).overlap is Overlap.QUEUE


def test_an_unknown_overlap_is_a_problem_and_reads_as_the_default() -> None:
    spec, problems = parse(pit_toml(dag(overlap="parallel"), task("a")))

    assert spec is not None
    assert spec.overlap is Overlap.SKIP
    assert the_problem(problems, "dag.overlap").fix == "use one of skip, queue, allow, latest"


def test_sql_task_types_and_load_modes_read_into_their_enums() -> None:
    spec = parse_ok(
        pit_toml(
            dag(),
            task("q", "q.sql", connection="db"),
            task("save", "s.sql", type="save", output="out", connection="db"),
            task("load", "l.sql", type="load", source="out", table="t", connection="db"),
            task(
                "replace",
                "r.sql",
                type="load",
                source="out",
                table="t",
                mode="create_or_replace",
                connection="db",
            ),
        )
    )

    assert [t.type for t in spec.tasks] == [
        TaskType.SCRIPT,
        TaskType.SAVE,
        TaskType.LOAD,
        TaskType.LOAD,
    ]
    assert spec.task("load").sql.mode is LoadMode.APPEND
    assert spec.task("replace").sql.mode is LoadMode.CREATE_OR_REPLACE


def test_an_unknown_task_type_is_a_problem_and_reads_as_script() -> None:
    spec, problems = parse(pit_toml(dag(), task("q", "q.sql", type="export", connection="db")))

    problem = the_problem(problems, "tasks[0].type")
    assert problem.message == "'export' is not a task type"
    assert problem.fix == "use one of script, save, load"
    assert spec is not None
    assert spec.tasks[0].type is TaskType.SCRIPT


def test_an_unknown_load_mode_is_a_problem_naming_the_modes() -> None:
    text = pit_toml(dag(), task("l", "l.sql", type="load", source="s", table="t", mode="upsert"))

    spec, problems = parse(text)

    problem = the_problem(problems, "tasks[0].mode")
    assert problem.message == "'upsert' is not a load mode"
    assert problem.fix == "use one of append, truncate_and_load, create_or_replace"
    assert spec is not None
    assert spec.tasks[0].sql.mode is LoadMode.APPEND


def test_mode_belongs_to_load_tasks() -> None:
    _, problems = parse(pit_toml(dag(), task("q", "q.sql", mode="append")))

    problem = the_problem(problems, "tasks[0].mode")
    assert problem.message == "only load tasks take mode"
    assert problem.fix == 'set type = "load", or remove it'


@pytest.mark.parametrize("member", [*Overlap, *TaskType, *LoadMode])
def test_the_enums_keep_their_string_values_in_text_json_and_pickles(
    member: Overlap | TaskType | LoadMode,
) -> None:
    """Messages, run records and the executor's pickles carry them: as the strings they were."""
    assert member == member.value
    assert f"{member}" == member.value
    assert json.dumps({"value": member}) == json.dumps({"value": member.value})
    assert pickle.loads(pickle.dumps(member)) is member
