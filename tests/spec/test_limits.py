"""Values that used to pass `validate` and then crash or hang a run: each is now a problem with
its file, key and fix (`pit.spec.limits`)."""

from __future__ import annotations

import math

import pytest

from pit.spec import limits
from pit.spec.dag import TaskSpec, parse_dag
from pit.spec.problems import Problem
from pit.spec.workspace import CONFIG_FILE, parse_workspace_config

from .tomltext import FILE, dag, parse, pit_toml, table, task, the_problem


def one_problem(problems: list[Problem], key: str) -> Problem:
    problem = the_problem(problems, key)
    assert problem.fix or "write it like" in problem.message, f"no fix in {problem}"
    return problem


@pytest.mark.parametrize(
    ("line", "key", "message"),
    [
        ("retry_backoff = nan", "retry_backoff", "must be a finite number, got nan"),
        ("retry_backoff = inf", "retry_backoff", "must be a finite number, got inf"),
        ("retry_backoff = 11.0", "retry_backoff", "must be from 1 to 10, got 11.0"),
        ("retries = 9223372036854775808", "retries", "must be from 0 to 100, got"),
        ("retries = 101", "retries", "must be from 0 to 100, got 101"),
        (f'retry_delay = "{"1" * 400}s"', "retry_delay", "(401 characters) is too long"),
        ('retry_delay = "8d"', "retry_delay", "'8d' is too long"),
        ('timeout = "0s"', "timeout", "'0s' must be longer than zero"),
        (f'script = "{"x" * 256}.py"', "script", "is 259 characters long"),
        ('script = "a\\u0000.py"', "script", "contains a NUL character"),
    ],
)
def test_hostile_task_values(line: str, key: str, message: str) -> None:
    text = pit_toml(dag(), '[[tasks]]\nname = "a"\nscript = "tasks/a.py"', line)
    if line.startswith("script"):
        text = pit_toml(dag(), f'[[tasks]]\nname = "a"\n{line}')

    _, problems = parse(text)

    assert message in one_problem(problems, f"tasks[0].{key}").message


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("a/b", "'/' is not allowed in a name"),
        ("../../../escape", "'/' is not allowed in a name"),
        ("..", "'..' cannot be a name"),
        (".", "'.' cannot be a name"),
        ("x" * 300, "is 300 characters long; the most is 100"),
        ("a b", "' ' is not allowed in a name"),
        ("naïve", "'ï' is not allowed in a name"),
        ("a\x00", "'\\x00' is not allowed in a name"),
    ],
)
def test_task_and_dag_names_follow_the_name_rule(name: str, reason: str) -> None:
    as_task = pit_toml(dag(), task(name, script="tasks/a.py"))
    as_dag = pit_toml(dag(name), task("a"))
    if "\x00" in name:  # the NUL check comes first: it applies to every string
        reason = "contains a NUL character"

    for text, key in ((as_task, "tasks[0].name"), (as_dag, "dag.name")):
        spec, problems = parse(text)
        problem = one_problem(problems, key)
        assert reason in problem.message
        assert spec is None
        if "NUL" not in reason:
            assert problem.fix == limits.NAME_RULE


@pytest.mark.parametrize("name", ["a", "extract_v2", "load.daily", "x-y", "A" * 100, "_"])
def test_good_names(name: str) -> None:
    spec, problems = parse(pit_toml(dag(name), task(name)))

    assert problems == []
    assert spec is not None


def test_the_name_rule_reads_well() -> None:
    assert limits.NAME_RULE == "1 to 100 letters, digits, '_', '.' or '-', and not '.' or '..'"


@pytest.mark.parametrize(
    ("zone", "message"),
    [
        ("Europe", "'Europe' is not a time zone"),  # a folder: zoneinfo raises IsADirectoryError
        ("Nowhere/City", "'Nowhere/City' is not a time zone"),
        ("../../etc/passwd", "is not a time zone"),
        ("x" * 200, "is not a time zone"),
        ("x" * 256, "is 256 characters long"),
    ],
)
def test_timezones_zoneinfo_cannot_load(zone: str, message: str) -> None:
    _, problems = parse(pit_toml(dag(timezone=zone, schedule="0 6 * * *"), task("a")))

    assert message in one_problem(problems, "dag.timezone").message


def test_max_active_tasks_is_bounded() -> None:
    _, problems = parse(pit_toml(dag(max_active_tasks=10**6), task("a")))

    assert one_problem(problems, "dag.max_active_tasks").message == (
        "must be from 1 to 1000, got 1000000"
    )


def test_ftp_poll_interval_must_be_positive_and_bounded() -> None:
    ftp = table("dag.ftp_watch", secret="s", directory="/in", poll_interval="0s")

    _, problems = parse(pit_toml(dag(), ftp, task("a")))

    assert (
        "must be longer than zero" in one_problem(problems, "dag.ftp_watch.poll_interval").message
    )


@pytest.mark.parametrize(
    "text",
    [
        "x = " + "9" * 4301 + "\n",  # Python's int-str limit: ValueError inside tomllib
        "x = " + "[" * 3000 + "]" * 3000 + "\n",  # RecursionError inside tomllib
        "x" + ".y" * 40 + " = 1\n",  # deep, but no recursion: pit's own limit
    ],
)
def test_toml_that_tomllib_cannot_or_should_not_read_is_a_problem(text: str) -> None:
    spec, problems = parse(text)

    assert spec is None
    (problem,) = problems
    assert problem.file == FILE
    assert problem.message.startswith("not valid TOML")
    assert problem.fix


def test_bytes_that_are_not_utf8_are_a_problem() -> None:
    spec, problems = parse_dag(b'[dag]\nname = "\xff"\n', FILE)

    assert spec is None
    (problem,) = problems
    assert problem.message == "not UTF-8 text (byte 0xff at offset 14)"
    assert problem.fix == "save the file as UTF-8"


def test_a_byte_order_mark_is_fine() -> None:
    spec, problems = parse_dag(b"\xef\xbb\xbf" + pit_toml(dag(), task("a")).encode(), FILE)

    assert problems == []
    assert spec is not None


def test_messages_do_not_repeat_a_huge_value() -> None:
    _, problems = parse(pit_toml(dag(overlap="w" * 70_000), task("a")))

    problem = one_problem(problems, "dag.overlap")
    assert problem.message == "is 70000 characters long"
    assert problem.fix == "the most is 4096"


def test_messages_cut_a_long_value_short() -> None:
    _, problems = parse(pit_toml(dag(overlap="w" * 1000), task("a")))

    problem = one_problem(problems, "dag.overlap")
    assert problem.message == f"'{'w' * 40}...' (1000 characters) is not an overlap policy"


def test_retry_waits_are_capped_at_the_longest_duration() -> None:
    task_spec = TaskSpec(
        name="a",
        script="a.sh",
        runner=parse(pit_toml(dag(), task("a", "a.sh")))[0].tasks[0].runner,  # type: ignore[union-attr]
        retries=100,
        retry_delay=limits.MAX_DURATION,
        retry_backoff=10.0,
    )

    waits = [task_spec.retry_wait(n) for n in range(1, 101)]

    assert all(math.isfinite(w) and w <= limits.MAX_DURATION for w in waits)


@pytest.mark.parametrize(
    ("line", "key", "message"),
    [
        ('shutdown_grace = "8d"', "shutdown_grace", "'8d' is too long"),
        ('stop_grace = "1e400s"', "stop_grace", "is not a duration"),
        (f'stop_grace = "{"9" * 400}s"', "stop_grace", "is too long"),
        ("max_active_runs = 0", "max_active_runs", "must be from 1 to 1000, got 0"),
        ("max_active_runs = 1001", "max_active_runs", "must be from 1 to 1000, got 1001"),
        ("max_active_tasks = -1", "max_active_tasks", "must be from 1 to 1000, got -1"),
        (f'secrets_dir = "{"s" * 256}"', "secrets_dir", "is 256 characters long"),
        (f'runs_dir = "{"r" * 256}"', "runs_dir", "is 256 characters long"),
        ('runs_dir = "a\\u0000b"', "runs_dir", "contains a NUL character"),
    ],
)
def test_hostile_workspace_config_values(line: str, key: str, message: str) -> None:
    _, problems = parse_workspace_config(line + "\n")

    (problem,) = problems
    assert (problem.file, problem.key) == (CONFIG_FILE, key)
    assert message in problem.message
    assert problem.fix or "write it like" in problem.message


def test_workspace_config_that_is_not_utf8_is_a_problem() -> None:
    config, problems = parse_workspace_config(b"runs_dir = '\xfe'\n")

    (problem,) = problems
    assert problem.message.startswith("not UTF-8 text")
    assert config.runs_dir == "runs"
