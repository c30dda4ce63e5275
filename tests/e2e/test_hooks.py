"""Task hooks under the real `pit run`: `on_failure` and `on_success` run with the task's
context once it has ended, their output in its log, what became of them in its record."""

from __future__ import annotations

import pytest

from tests.conftest import Pit, Workspace

pytestmark = pytest.mark.e2e

HOOK = 'echo "hook of $PIT_TASK_NAME: $PIT_TASK_STATE ($PIT_TASK_ERROR)"\n'


def test_hooks_run_after_their_task_with_its_context(workspace: Workspace, pit: Pit) -> None:
    workspace.project(
        "etl",
        """
        [dag]
        name = "etl"

        [[tasks]]
        name = "good"
        script = "good.sh"
        on_success = "hook.sh"

        [[tasks]]
        name = "bad"
        script = "bad.sh"
        retries = 1
        on_failure = "hook.sh"

        [[tasks]]
        name = "stuck"
        script = "bad.sh"
        on_failure = "slow.sh"
        hook_timeout = "1s"
        """,
        {
            "good.sh": "echo fine\n",
            "bad.sh": "exit 4\n",
            "hook.sh": HOOK,
            "slow.sh": "sleep 30\n",
        },
    )
    result = pit("run", "etl")
    assert result.returncode == 1
    run = workspace.only_run("etl")
    tasks = {t["name"]: t for t in workspace.manifest(run)["tasks"]}
    assert tasks["good"]["hook"] == "on_success: exited 0"
    assert tasks["bad"]["hook"] == "on_failure: exited 0"
    assert tasks["bad"]["attempts"] == 2  # the hook ran once, after the last attempt
    assert tasks["stuck"]["hook"] == "on_failure: timed out after 1.0s"
    assert "hook of good: success ()" in (run / "logs" / "good.log").read_text()
    bad_log = (run / "logs" / "bad.log").read_text()
    assert bad_log.count("=== on_failure hook ===") == 1
    assert "hook of bad: failed (exit code 4)" in bad_log


def test_a_hook_that_does_not_exist_is_a_problem(workspace: Workspace, pit: Pit) -> None:
    workspace.project(
        "etl",
        '[dag]\nname = "etl"\n[[tasks]]\nname = "a"\nscript = "a.sh"\non_failure = "nope.sh"\n',
        {"a.sh": "true\n"},
    )
    result = pit("validate")
    assert result.returncode == 1
    assert "tasks[0].on_failure: script 'nope.sh' does not exist" in result.stdout
