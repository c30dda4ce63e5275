"""`Problem` and `did_you_mean`: how a problem reads to the user."""

from __future__ import annotations

from pit.spec.problems import Problem, did_you_mean


def test_problem_with_key_and_fix() -> None:
    problem = Problem(file="projects/etl/pit.toml", key="tasks[2].script", message="m", fix="f")

    assert str(problem) == "projects/etl/pit.toml: tasks[2].script: m (f)"


def test_whole_file_problem_without_fix() -> None:
    assert str(Problem(file="pit_config.toml", message="not valid TOML")) == (
        "pit_config.toml: not valid TOML"
    )


def test_problem_as_json() -> None:
    problem = Problem(file="f", key="dag.name", message="is required")

    assert problem.to_json() == {
        "file": "f",
        "key": "dag.name",
        "message": "is required",
        "fix": "",
        "severity": "error",
    }


def test_did_you_mean_picks_the_closest() -> None:
    assert (
        did_you_mean("retires", ["retry_delay", "retries", "runner"]) == "did you mean 'retries'?"
    )


def test_did_you_mean_says_nothing_when_nothing_is_close() -> None:
    assert did_you_mean("colour", ["retries", "runner"]) == ""
    assert did_you_mean("x", []) == ""


def test_did_you_mean_takes_any_iterable() -> None:
    assert (
        did_you_mean("extrct", (name for name in ["load", "extract"])) == "did you mean 'extract'?"
    )
