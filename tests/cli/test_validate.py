"""`pit validate`, and how every command finds its workspace (-C, PIT_PROJECT_DIR, the cwd)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e

GOOD = {"a": "echo a\n"}


def groups(stdout: str) -> dict[str, list[str]]:
    """`pit validate` output as {group title: its problem lines}."""
    found: dict[str, list[str]] = {}
    current = None
    for line in stdout.splitlines():
        if line.startswith("  - "):
            assert current is not None, f"a problem outside any group: {line!r}"
            found[current].append(line.removeprefix("  - "))
        elif line.endswith(":"):
            current = line.removesuffix(":")
            found[current] = []
    return found


def test_valid_workspace_exits_0(workspace, pit):
    workspace.shell_project("etl", {"extract": "echo e\n", "load": "echo l\n"})
    workspace.shell_project("other", GOOD)

    result = pit("validate")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2 of 2 projects valid, 0 problems"
    assert result.stderr == ""


def test_problems_are_grouped_by_project_with_file_and_key(workspace, pit):
    workspace.shell_project("good", GOOD)
    workspace.project(
        "typo",
        """
        [dag]
        name = "typo"

        [[tasks]]
        name = "a"
        script = "tasks/a.sh"
        retires = 2
        """,
        {"tasks/a.sh": "echo a\n"},
    )
    workspace.project(
        "wiring",
        """
        [dag]
        name = "wiring"

        [[tasks]]
        name = "a"
        script = "tasks/missing.sh"

        [[tasks]]
        name = "b"
        script = "tasks/b.sh"
        depends_on = ["nope"]
        """,
        {"tasks/b.sh": "echo b\n"},
    )

    result = pit("validate")

    assert result.returncode == 1
    found = groups(result.stdout)
    assert set(found) == {"typo", "wiring"}
    (typo,) = found["typo"]
    assert typo.startswith("projects/typo/pit.toml: tasks[0].retires: unknown key")
    assert "did you mean 'retries'?" in typo
    assert len(found["wiring"]) == 2
    assert all(line.startswith("projects/wiring/pit.toml: ") for line in found["wiring"])
    assert any("tasks[0].script" in line and "missing.sh" in line for line in found["wiring"])
    assert any("tasks[1].depends_on" in line and "nope" in line for line in found["wiring"])
    assert result.stdout.splitlines()[-1] == "1 of 3 projects valid, 3 problems"


def test_json_lists_problems_with_file_key_message_and_fix(workspace, pit):
    workspace.project(
        "typo",
        """
        [dag]
        name = "typo"
        scedule = "0 6 * * *"

        [[tasks]]
        name = "a"
        script = "tasks/a.sh"
        """,
        {"tasks/a.sh": "echo a\n"},
    )

    result = pit("validate", "--json")

    assert result.returncode == 1
    problems = json.loads(result.stdout)
    assert problems == [
        {
            "file": "projects/typo/pit.toml",
            "key": "dag.scedule",
            "message": problems[0]["message"],
            "fix": "did you mean 'schedule'?",
            "severity": "error",
        }
    ]
    assert "unknown key" in problems[0]["message"]


def test_json_is_an_empty_list_for_a_valid_workspace(workspace, pit):
    workspace.shell_project("etl", GOOD)

    result = pit("validate", "--json")

    assert result.returncode == 0
    assert json.loads(result.stdout) == []


def test_workspace_config_problems_are_their_own_group(workspace, pit):
    workspace.shell_project("etl", GOOD)
    workspace.config('keep_artifacts = ["logz"]\n')

    result = pit("validate")

    assert result.returncode == 1
    (problem,) = groups(result.stdout)["pit_config.toml"]
    assert problem.startswith("pit_config.toml: keep_artifacts: ")
    assert "logz" in problem


def test_malformed_toml_names_line_and_column_without_traceback(workspace, pit):
    workspace.shell_project("good", GOOD)
    workspace.project(
        "broken",
        """\
        [dag]
        name = "broken"

        [[tasks]
        name = "a"
        """,
    )

    result = pit("validate")

    assert result.returncode == 1
    (problem,) = groups(result.stdout)["broken"]
    assert problem.startswith("projects/broken/pit.toml: not valid TOML")
    assert "line 4, column 8" in problem
    assert "Traceback" not in result.stdout + result.stderr
    # The broken file does not stop the others from being checked.
    assert result.stdout.splitlines()[-1].startswith("1 of 2 projects valid")


def test_missing_projects_folder_is_a_one_line_error(tmp_path, pit):
    empty = tmp_path / "empty"
    empty.mkdir()

    result = pit("-C", str(empty), "validate", with_root=False)

    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("pit: no projects/ folder in ")
    assert "pit init" in line


def test_missing_workspace_folder_is_a_one_line_error(tmp_path, pit):
    result = pit("-C", str(tmp_path / "nowhere"), "validate", with_root=False)

    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "nowhere" in line
    assert "does not exist" in line


def test_project_dir_flag_env_var_and_cwd_find_the_workspace(workspace, pit, tmp_path):
    workspace.shell_project("etl", GOOD)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = str(workspace.root)
    valid = "1 of 1 project valid, 0 problems\n"

    long_flag = pit("--project-dir", root, "validate", with_root=False, cwd=elsewhere)
    short_flag = pit("-C", root, "validate", with_root=False, cwd=elsewhere)
    env_var = pit("validate", with_root=False, cwd=elsewhere, env={"PIT_PROJECT_DIR": root})
    cwd = pit("validate", with_root=False, cwd=workspace.root)
    neither = pit("validate", with_root=False, cwd=elsewhere)

    assert [long_flag.stdout, short_flag.stdout, env_var.stdout, cwd.stdout] == [valid] * 4
    assert neither.returncode == 2
    assert "no projects/ folder" in neither.stderr


def test_project_dir_flag_wins_over_env_var(workspace, pit, tmp_path):
    workspace.shell_project("etl", GOOD)

    result = pit("validate", env={"PIT_PROJECT_DIR": str(tmp_path / "nowhere")})

    assert result.returncode == 0, result.stderr


def test_one_problem_is_one_problem(workspace, pit):
    workspace.shell_project("etl", GOOD, dag_keys='overlap = "sometimes"')

    result = pit("validate")

    assert result.returncode == 1
    assert result.stdout.splitlines()[-1] == "0 of 1 project valid, 1 problem"


def test_a_workspace_without_projects_is_an_error(workspace, pit):
    (workspace.root / "projects").mkdir(exist_ok=True)

    result = pit("validate")

    assert result.returncode == 1
    assert result.stdout.strip() == (
        "no projects found in projects/ (create one with `pit init <name>`)"
    )


def test_hostile_values_are_problems_not_tracebacks(workspace, pit):
    workspace.project(
        "hostile",
        """
        [dag]
        name = "../../../escape"
        timezone = "Europe"

        [[tasks]]
        name = "a/b"
        script = "tasks/a.sh"
        retries = 9223372036854775808
        retry_backoff = nan
        retry_delay = "%ss"
        """
        % ("9" * 400),
        {"tasks/a.sh": "echo a\n"},
    )

    result = pit("validate")

    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    found = groups(result.stdout)["hostile"]
    keys = [line.split(": ")[1] for line in found]
    assert keys == [
        "dag.name",
        "dag.timezone",
        "tasks[0].name",
        "tasks[0].retries",
        "tasks[0].retry_delay",
        "tasks[0].retry_backoff",
    ]


def test_the_original_pit_config_keys_are_valid(workspace, pit):
    workspace.shell_project("etl", GOOD)
    workspace.config('metadata_db = "pit.db"\napi_token = "t"\nsecrets_recipients = "r.txt"\n')

    result = pit("validate")

    assert result.returncode == 0, result.stdout
    assert "pit_config.toml" not in groups(result.stdout)
    assert result.stdout.splitlines()[-1] == "1 of 1 project valid, 0 problems"


def test_an_unknown_config_key_fails_validate_but_not_run(workspace, pit):
    workspace.shell_project("etl", GOOD)
    workspace.config('runs_dri = "elsewhere"\n')

    validated = pit("validate")
    ran = pit("run", "etl")

    assert validated.returncode == 1
    (problem,) = groups(validated.stdout)["pit_config.toml"]
    assert problem == "pit_config.toml: runs_dri: unknown key (did you mean 'runs_dir'?)"
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr.splitlines()[0] == (
        "pit: warning: pit_config.toml: runs_dri: unknown key (did you mean 'runs_dir'?)"
    )


def test_a_broken_task_does_not_hide_the_cycle_of_the_others(workspace, pit):
    workspace.project(
        "etl",
        """
        [dag]
        name = "etl"

        [[tasks]]
        name = "a"
        script = "tasks/a.sh"
        depends_on = ["b"]

        [[tasks]]
        name = "b"
        script = "tasks/a.sh"
        depends_on = ["a"]

        [[tasks]]
        name = "c"
        """,
        {"tasks/a.sh": "echo a\n"},
    )

    result = pit("validate")

    assert result.returncode == 1
    found = groups(result.stdout)["etl"]
    assert [line.split(": ")[1] for line in found] == ["tasks[2].script", "tasks"]
    assert "dependency cycle: a -> b -> a" in found[1]


@pytest.mark.parametrize("where", ["validate --secrets s.toml", "--secrets s.toml validate"])
def test_secrets_names_the_list_entries_the_file_lacks(workspace, pit, where):
    workspace.write("s.toml", "[global]\napi_token = 't'\n")
    workspace.project(
        "etl",
        """
        [dag]
        name = "etl"
        secrets = ["api_token", "vendr"]

        [[tasks]]
        name = "a"
        script = "a.sh"
        """,
        {"a.sh": "echo a\n"},
    )
    result = pit(*where.split())
    assert result.returncode == 1
    assert groups(result.stdout)["etl"] == [
        "projects/etl/pit.toml: dag.secrets[1]: secret 'vendr' is not in the secrets file"
        " (add it under [etl] or [global])"
    ]
