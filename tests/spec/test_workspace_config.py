"""`parse_workspace_config`: `pit_config.toml`, every field optional."""

from __future__ import annotations

import pytest

from pit.spec.workspace import CONFIG_FILE, WorkspaceConfig, parse_workspace_config

from .tomltext import pit_toml, value


def config_text(**keys: object) -> str:
    return pit_toml(*(f"{key} = {value(item)}" for key, item in keys.items()))


def parse_config_ok(text: str) -> WorkspaceConfig:
    config, problems = parse_workspace_config(text)
    assert [p for p in problems if p.is_error] == []
    return config


def test_empty_file_gives_the_defaults() -> None:
    config = parse_config_ok("")

    assert config == WorkspaceConfig()
    assert config.secrets_path is None
    assert (config.runs_dir, config.repo_cache_dir) == ("runs", "repo_cache")
    assert config.dbt_driver == "ODBC Driver 17 for SQL Server"
    assert config.keep_artifacts == ("logs", "project", "data")
    assert config.max_active_tasks is None


def test_every_field() -> None:
    config = parse_config_ok(
        config_text(
            secrets_dir="secrets/secrets.toml",
            runs_dir="var/runs",
            repo_cache_dir="var/cache",
            dbt_driver="ODBC Driver 18 for SQL Server",
            keep_artifacts=["logs"],
            max_active_tasks=8,
        )
    )

    assert config == WorkspaceConfig(
        secrets_path="secrets/secrets.toml",
        runs_dir="var/runs",
        repo_cache_dir="var/cache",
        dbt_driver="ODBC Driver 18 for SQL Server",
        keep_artifacts=("logs",),
        max_active_tasks=8,
    )


def test_keep_nothing() -> None:
    assert parse_config_ok(config_text(keep_artifacts=[])).keep_artifacts == ()


def test_unknown_keep_artifacts_value() -> None:
    _, problems = parse_workspace_config(config_text(keep_artifacts=["logs", "venv"]))

    (problem,) = problems
    assert (problem.file, problem.key) == (CONFIG_FILE, "keep_artifacts")
    assert problem.message == "'venv' is not a run artifact"
    assert problem.fix == "use any of logs, project, data"


def test_unknown_key_with_did_you_mean() -> None:
    _, problems = parse_workspace_config(config_text(runs_dri="runs"))

    (problem,) = problems
    assert str(problem) == "pit_config.toml: runs_dri: unknown key (did you mean 'runs_dir'?)"


def test_the_seed_key_is_secrets_dir_not_secrets_path() -> None:
    _, problems = parse_workspace_config(config_text(secrets_path="s.toml"))

    (problem,) = problems
    assert problem.key == "secrets_path"
    assert problem.message == "unknown key"
    assert problem.fix == "did you mean 'secrets_dir'?"


@pytest.mark.parametrize(
    ("keys", "key", "message"),
    [
        ({"max_active_tasks": 0}, "max_active_tasks", "must be from 1 to 1000, got 0"),
        ({"max_active_tasks": "4"}, "max_active_tasks", "expected an integer, got a string"),
        ({"runs_dir": 5}, "runs_dir", "expected a string, got an integer"),
        ({"keep_artifacts": "logs"}, "keep_artifacts", "expected a list of strings, got a string"),
    ],
)
def test_bad_values(keys: dict[str, object], key: str, message: str) -> None:
    config, problems = parse_workspace_config(config_text(**keys))

    (problem,) = problems
    assert (problem.key, problem.message) == (key, message)
    assert config.max_active_tasks is None


def test_malformed_toml_names_the_line_and_gives_defaults() -> None:
    config, problems = parse_workspace_config('runs_dir = "runs"\ndbt_driver = ODBC\n', "cfg.toml")

    (problem,) = problems
    assert problem.file == "cfg.toml"
    assert "not valid TOML" in problem.message
    assert "line 2" in problem.message
    assert config == WorkspaceConfig()


def test_every_problem_in_one_pass() -> None:
    _, problems = parse_workspace_config(
        config_text(keep_artifacts=["log"], max_active_tasks=-2, repo_cache="c", dbt_driver=17)
    )

    assert {p.key: p.message for p in problems} == {
        "keep_artifacts": "'log' is not a run artifact",
        "max_active_tasks": "must be from 1 to 1000, got -2",
        "repo_cache": "unknown key",
        "dbt_driver": "expected a string, got an integer",
    }


def test_stop_grace() -> None:
    assert parse_config_ok("").stop_grace == 10.0
    assert parse_config_ok(config_text(stop_grace="30s")).stop_grace == 30.0
    assert parse_config_ok(config_text(stop_grace="500ms")).stop_grace == 0.5


def test_bad_stop_grace() -> None:
    config, problems = parse_workspace_config(config_text(stop_grace="a while"))

    (problem,) = problems
    assert problem.key == "stop_grace"
    assert "'a while' is not a duration" in problem.message
    assert config.stop_grace == 10.0


def test_max_queued_runs_defaults_to_100_and_is_bounded() -> None:
    assert parse_config_ok("").max_queued_runs == 100
    assert parse_config_ok(config_text(max_queued_runs=5)).max_queued_runs == 5
    _, problems = parse_workspace_config(config_text(max_queued_runs=0))
    assert [p.key for p in problems if p.is_error] == ["max_queued_runs"]
