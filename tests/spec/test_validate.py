"""`validate_dag` and `validate_dag_names`: rules that need more than one key."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pit.spec.dag import DagSpec, read_dag
from pit.spec.problems import Problem
from pit.spec.validate import validate_dag, validate_dag_names

from .tomltext import FILE, dag, parse, parse_ok, pit_toml, table, task, the_problem


def every_script_exists(path: str) -> bool:
    return True


def no_script_exists(path: str) -> bool:
    return False


def validate(
    spec: DagSpec, script_exists: Callable[[str], bool] = every_script_exists
) -> list[Problem]:
    return validate_dag(spec, FILE, script_exists)


def test_a_sound_dag_has_no_problems() -> None:
    spec = parse_ok(
        pit_toml(
            dag(schedule="0 6 * * *"),
            task("extract"),
            task("validate", depends_on=["extract"]),
            task("load", depends_on=["validate", "extract"]),
        )
    )

    assert validate(spec) == []


def test_cycle_prints_its_path() -> None:
    spec = parse_ok(
        pit_toml(
            dag(),
            task("a", depends_on=["b"]),
            task("b", depends_on=["c"]),
            task("c", depends_on=["a"]),
        )
    )

    problem = the_problem(validate(spec), "tasks")
    assert problem.message == "dependency cycle: a -> b -> c -> a"
    assert "depends_on" in problem.fix


def test_two_task_cycle_off_the_first_task() -> None:
    spec = parse_ok(
        pit_toml(
            dag(),
            task("start"),
            task("x", depends_on=["start", "y"]),
            task("y", depends_on=["x"]),
        )
    )

    assert the_problem(validate(spec), "tasks").message == "dependency cycle: x -> y -> x"


def test_task_that_depends_on_itself() -> None:
    spec = parse_ok(pit_toml(dag(), task("a", depends_on=["a"])))

    problems = validate(spec)

    assert the_problem(problems, "tasks[0].depends_on").message == "task 'a' depends on itself"
    assert len(problems) == 1  # not also reported as a cycle


def test_unknown_depends_on_with_did_you_mean() -> None:
    spec = parse_ok(pit_toml(dag(), task("extract"), task("load", depends_on=["extrct"])))

    problem = the_problem(validate(spec), "tasks[1].depends_on")
    assert problem.message == "unknown task 'extrct'"
    assert problem.fix == "did you mean 'extract'?"


def test_unknown_depends_on_lists_the_tasks_when_nothing_is_close() -> None:
    spec = parse_ok(pit_toml(dag(), task("extract"), task("load", depends_on=["zzz"])))

    problem = the_problem(validate(spec), "tasks[1].depends_on")
    assert problem.message == "unknown task 'zzz'"
    assert problem.fix == "tasks are: extract, load"


def test_duplicate_task_names_point_at_the_second() -> None:
    spec = parse_ok(pit_toml(dag(), task("a"), task("b"), task("a", script="tasks/a2.py")))

    problem = the_problem(validate(spec), "tasks[2].name")
    assert problem.message == "duplicate task name 'a'"
    assert problem.fix == "task names must be unique"


def test_missing_script_file() -> None:
    spec = parse_ok(pit_toml(dag(), task("extract"), task("load", script="tasks/load.sh")))
    exists = {"tasks/extract.py"}.__contains__

    problem = the_problem(validate(spec, exists), "tasks[1].script")
    assert problem.message == "script 'tasks/load.sh' does not exist"
    assert "relative to the project folder" in problem.fix


def test_script_paths_are_asked_for_relative_to_the_project() -> None:
    spec = parse_ok(pit_toml(dag(), task("a", script="tasks/a.sh"), task("b", script="b.sql")))
    asked: list[str] = []

    def script_exists(path: str) -> bool:
        asked.append(path)
        return True

    validate(spec, script_exists)

    assert asked == ["tasks/a.sh", "b.sql"]


def test_missing_scripts_are_not_checked_for_git_backed_dags() -> None:
    spec = parse_ok(pit_toml(dag(git_url="git@example.com:c/claims.git", git_ref="v1"), task("a")))

    assert validate(spec, no_script_exists) == []


def dbt_table(**keys: object) -> str:
    return table("dag.dbt", version="1.9.1", adapter="dbt-sqlserver", connection="db", **keys)


def test_dbt_task_without_a_dbt_table() -> None:
    spec = parse_ok(pit_toml(dag(), task("models", script="run", runner="dbt")))

    problem = the_problem(validate(spec, no_script_exists), "tasks[0].runner")
    assert problem.message == "a dbt task needs a [dag.dbt] table"
    assert "[dag.dbt]" in problem.fix


def test_dbt_task_script_is_a_command_not_a_file() -> None:
    spec = parse_ok(
        pit_toml(dag(), dbt_table(project_dir="dbt_repo"), task("m", "run", runner="dbt"))
    )

    assert validate(spec, {"dbt_repo/dbt_project.yml"}.__contains__) == []


def test_dbt_project_dir_without_dbt_project_yml() -> None:
    spec = parse_ok(
        pit_toml(dag(), dbt_table(project_dir="dbt_repo"), task("m", "run", runner="dbt"))
    )

    problem = the_problem(validate(spec, no_script_exists), "dag.dbt.project_dir")
    assert problem.message == "no dbt_project.yml in 'dbt_repo'"


def test_dbt_project_dir_is_not_checked_for_git_backed_dags() -> None:
    spec = parse_ok(
        pit_toml(
            dag(git_url="https://g.example/u", git_ref="main"),
            dbt_table(project_dir="dbt_repo"),
            task("m", "run", runner="dbt"),
        )
    )

    assert validate(spec, no_script_exists) == []


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("0 6 * *", "'0 6 * *' has 4 fields; cron needs 5"),
        ("0 6 * * * *", "'0 6 * * * *' has 6 fields; cron needs 5"),
        ("61 6 * * *", "'61 6 * * *': minute field '61' out of range 0-59"),
        ("0 25 * * *", "'0 25 * * *': hour field '25' out of range 0-23"),
        ("@daily", "'@daily' has 1 field; cron needs 5"),
    ],
)
def test_bad_cron(schedule: str, message: str) -> None:
    spec = parse_ok(pit_toml(dag(schedule=schedule), task("a")))

    problem = the_problem(validate(spec), "dag.schedule")
    assert problem.message.startswith(message)
    assert "'0 6 * * *'" in problem.fix


def test_every_cross_key_problem_in_one_pass() -> None:
    text = pit_toml(
        dag(schedule="every day", overlap="often"),
        task("a", depends_on=["c"], retires=1),
        task("b", depends_on=["a", "ghost"]),
        task("c", depends_on=["b"]),
        task("a", script="tasks/a2.py", depends_on=["c"]),
    )
    spec, parse_problems = parse(text)
    assert spec is not None  # key problems alone do not stop the graph checks

    problems = parse_problems + validate(spec, {"tasks/a.py", "tasks/b.py"}.__contains__)

    assert {p.file for p in problems} == {FILE}
    assert sorted((p.key, p.message) for p in problems) == sorted(
        [
            ("dag.overlap", "'often' is not an overlap policy"),
            ("tasks[0].retires", "unknown key"),
            ("tasks[3].name", "duplicate task name 'a'"),
            ("tasks[1].depends_on", "unknown task 'ghost'"),
            ("tasks[2].script", "script 'tasks/c.py' does not exist"),
            ("tasks[3].script", "script 'tasks/a2.py' does not exist"),
            ("tasks", "dependency cycle: a -> c -> b -> a"),
            (
                "dag.schedule",
                "'every day' has 2 fields; cron needs 5 "
                "(minute hour day-of-month month day-of-week)",
            ),
        ]
    )


def test_duplicate_task_name_does_not_hide_a_cycle() -> None:
    # Both problems belong in the same pass: renaming the second 'b' must not reveal a new one.
    spec = parse_ok(
        pit_toml(
            dag(),
            task("a", depends_on=["b"]),
            task("b", depends_on=["a"]),
            task("b", script="tasks/b2.py"),
        )
    )

    problems = validate(spec)

    assert the_problem(problems, "tasks[2].name").message == "duplicate task name 'b'"
    assert the_problem(problems, "tasks").message == "dependency cycle: a -> b -> a"


# --- DAG names across projects -------------------------------------------------------------------


def named(name: str) -> DagSpec:
    return parse_ok(pit_toml(dag(name=name), task("a")))


def test_duplicate_dag_names_across_projects() -> None:
    problems = validate_dag_names(
        [
            ("projects/one/pit.toml", named("etl")),
            ("projects/two/pit.toml", named("report")),
            ("projects/three/pit.toml", named("etl")),
            ("projects/four/pit.toml", named("etl")),
        ]
    )

    assert [(p.file, p.key) for p in problems] == [
        ("projects/three/pit.toml", "dag.name"),
        ("projects/four/pit.toml", "dag.name"),
    ]
    assert problems[0].message == "DAG name 'etl' is already used by projects/one/pit.toml"
    assert problems[0].fix == "DAG names must be unique across projects"


def test_distinct_dag_names_are_fine() -> None:
    assert validate_dag_names([("a/pit.toml", named("a")), ("b/pit.toml", named("b"))]) == []


# --- one pass: a task that does not parse hides nothing else -----------------------------------


def test_a_broken_task_does_not_hide_cycles_or_missing_dependencies() -> None:
    text = pit_toml(
        dag(),
        task("a", depends_on=["b"]),
        task("b", depends_on=["a"]),
        task("broken", retries="many"),  # parses: a bad value falls back
        table("[[tasks]]", name="no_script"),  # does not parse: no script
        task("c", depends_on=["no_script", "ghost"]),
    )

    draft, problems = read_dag(text, FILE)
    assert draft is not None
    problems += validate_dag(draft, FILE, every_script_exists)

    assert not draft.complete
    assert parse(text)[0] is None  # a DAG with a broken task never runs
    found = {p.key: p.message for p in problems}
    assert found == {
        "tasks[2].retries": "expected an integer, got a string",
        "tasks[3].script": "is required",
        "tasks[4].depends_on": "unknown task 'ghost'",  # no_script is known: it was written
        "tasks": "dependency cycle: a -> b -> a",
    }


def test_a_missing_dag_name_does_not_hide_task_problems() -> None:
    draft, problems = read_dag(pit_toml(dag(None), task("a", depends_on=["a"])), FILE)
    assert draft is not None
    problems += validate_dag(draft, FILE, no_script_exists)

    assert {p.key for p in problems} == {"dag.name", "tasks[0].depends_on", "tasks[0].script"}


def test_duplicates_are_found_among_the_tasks_that_parsed() -> None:
    text = pit_toml(dag(), table("[[tasks]]", name="a"), task("a"), task("a", "tasks/b.py"))

    draft, problems = read_dag(text, FILE)
    assert draft is not None
    problems += validate_dag(draft, FILE, every_script_exists)

    assert {p.key: p.message for p in problems} == {
        "tasks[0].script": "is required",
        "tasks[2].name": "duplicate task name 'a'",  # its place in the file, not among the parsed
    }


# --- SQL tasks need a connection -----------------------------------------------------------------


def test_a_sql_task_without_any_connection() -> None:
    spec = parse_ok(pit_toml(dag(), task("q", "q.sql")))

    problem = the_problem(validate(spec), "tasks[0].connection")
    assert problem.message == "a SQL script task needs a database connection"
    assert "[dag.sql]" in problem.fix


@pytest.mark.parametrize(
    "sections",
    [
        (table("dag.sql", connection="warehouse"), task("q", "q.sql")),
        (task("q", "q.sql", connection="warehouse"),),
    ],
)
def test_a_sql_task_with_a_connection_here_or_in_dag_sql(sections: tuple[str, ...]) -> None:
    assert validate(parse_ok(pit_toml(dag(), *sections))) == []
