"""Whole runs through the real `pit`: the shipped quickstart example and a custom runner."""

from __future__ import annotations

import pytest

from tests.e2e.quickstart import assert_quickstart_succeeded, copy_examples

pytestmark = pytest.mark.e2e


@pytest.fixture
def examples_copy(tmp_path):
    return copy_examples(tmp_path)


def test_quickstart_example_runs(examples_copy, pit):
    # Offline: uv installs the project's pyarrow from its cache, filled when pit's own
    # environment was synced. Tests touch no network.
    result = pit(
        "-C", str(examples_copy), "run", "quickstart", with_root=False, env={"UV_OFFLINE": "1"}
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert_quickstart_succeeded(examples_copy)


def test_quickstart_example_validates(examples_copy, pit):
    result = pit("-C", str(examples_copy), "validate", "--json", with_root=False)

    assert result.returncode == 0, result.stdout
    assert result.stdout.strip() == "[]"


def test_custom_runner_puts_its_words_before_the_script(workspace, pit):
    workspace.project(
        "custom",
        """
        [dag]
        name = "custom"

        [[tasks]]
        name = "hello"
        script = "tasks/hello.py"
        runner = "$ python3 -X utf8"
        """,
        {
            "tasks/hello.py": """\
            import os
            import sys

            print(f"utf8_mode={sys.flags.utf8_mode} script={sys.argv[0]}")
            print(f"task={os.environ['PIT_TASK_NAME']}")
            """
        },
    )

    result = pit("run", "custom")

    assert result.returncode == 0, result.stdout + result.stderr
    run = workspace.only_run("custom")
    log = (run / "logs" / "hello.log").read_text()
    assert f"utf8_mode=1 script={run / 'project' / 'tasks' / 'hello.py'}" in log
    assert "task=hello" in log


def test_custom_runner_that_does_not_exist_fails_the_task(workspace, pit):
    workspace.project(
        "custom",
        """
        [dag]
        name = "custom"

        [[tasks]]
        name = "hello"
        script = "tasks/hello.js"
        runner = "$ no-such-interpreter-for-pit"
        """,
        {"tasks/hello.js": "console.log('hi')\n"},
    )

    result = pit("run", "custom")

    assert result.returncode == 1
    task = workspace.task(workspace.only_run("custom"), "hello")
    assert task["state"] == "failed"
    assert "no-such-interpreter-for-pit" in task["error"]


def test_retention_removes_old_runs_and_compresses_old_logs(workspace, pit):
    """keep_runs keeps the newest runs of a DAG (folders and store rows alike); the logs of
    runs ended longer ago than archive_logs_after are compressed, and `pit logs` reads them."""
    import time

    from pit.store.runstore import RunStore

    workspace.config('keep_runs = 2\narchive_logs_after = "1s"\n')
    workspace.shell_project("etl", {"work": "echo hello from $PIT_RUN_ID\n"})
    for _ in range(2):
        assert pit("run", "etl").returncode == 0
        time.sleep(1.1)
    first, second = workspace.run_dirs("etl")
    assert (first / "logs" / "work.log.gz").is_file()  # archived when the second ended
    assert not (first / "logs" / "work.log").exists()
    shown = pit("logs", "etl", "--run-id", first.name)
    assert shown.returncode == 0, shown.stderr
    assert f"hello from {first.name}" in shown.stdout

    assert pit("run", "etl").returncode == 0
    kept = workspace.run_dirs("etl")
    assert [run.name for run in kept][:1] == [second.name]
    assert len(kept) == 2
    assert not first.exists()
    with RunStore.open(workspace.root / ".pit" / "pit.db") as store:
        assert sorted(r.run_id for r in store.runs()) == [run.name for run in kept]
