"""`pit run <dag>[/<task>]`: a target that names nothing is a clear error, and warnings of the
DAG (keys accepted for the original Pit but not used yet) are shown without stopping the run."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("etl/", "pit: 'etl/' names no task: write `pit run <dag>` for the whole DAG, or "),
        ("/a", "pit: '/a' names no DAG: write `pit run <dag>` for the whole DAG, or "),
    ],
)
def test_a_target_without_a_name_is_an_error(workspace, pit, target, message):
    workspace.shell_project("etl", {"a": "echo a\n"})

    result = pit("run", target)

    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(message)
    assert workspace.run_dirs("etl") == []


def test_warnings_of_the_dag_are_shown_and_the_run_goes_on(workspace, pit):
    workspace.shell_project(
        "etl", {"a": "echo a\n"}, dag_keys='requires = { other = { max_age = "24h" } }'
    )

    result = pit("run", "etl")

    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("pit: warning: projects/etl/pit.toml: dag.requires: ")
