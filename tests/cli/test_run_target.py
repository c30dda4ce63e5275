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
