"""`pit run dag[/task]`: exit codes, the plain view, --verbose, one task, bad names, run folders."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

import pytest

pytestmark = pytest.mark.e2e

TWO_STEPS = {"extract": "echo extracting\n", "load": "echo loading\n"}
LOAD_AFTER_EXTRACT = {"load": ["extract"]}
TERMINAL_HANG_GUARD = 60.0


def task_lines(stdout: str, task: str) -> list[str]:
    """The plain view's lines about `task`: `<task>  <state> [...]`, state first."""
    return [
        line.split(maxsplit=1)[1]
        for line in stdout.splitlines()
        if line.split(maxsplit=1)[:1] == [task] and " " in line
    ]


def test_success_exits_0_with_one_plain_line_per_state_change(workspace, pit):
    workspace.shell_project("etl", TWO_STEPS, depends_on=LOAD_AFTER_EXTRACT)

    result = pit("run", "etl")

    assert result.returncode == 0, result.stdout + result.stderr
    run_id = workspace.only_run("etl").name
    lines = result.stdout.splitlines()
    assert lines[0] == f"run {run_id} started (2 tasks)"
    assert lines[-1].startswith(f"run {run_id} success")
    assert [s.split()[0] for s in task_lines(result.stdout, "extract")] == ["running", "success"]
    assert [s.split()[0] for s in task_lines(result.stdout, "load")] == ["running", "success"]
    assert len(lines) == 6  # started, 2 x (running, success), summary: nothing else
    assert "\x1b" not in result.stdout  # no terminal codes when stdout is not a terminal
    # Task output goes to the log, not to the screen, without --verbose.
    assert "extracting" not in result.stdout
    assert workspace.task_states(workspace.only_run("etl")) == {
        "extract": "success",
        "load": "success",
    }


def test_failure_exits_1_and_fails_downstream(workspace, pit):
    workspace.shell_project(
        "etl",
        {"boom": "echo oops >&2\nexit 3\n", "after": "echo never\n", "aside": "echo fine\n"},
        depends_on={"after": ["boom"]},
    )

    result = pit("run", "etl")

    assert result.returncode == 1
    run = workspace.only_run("etl")
    assert workspace.manifest(run)["state"] == "failed"
    assert workspace.task_states(run) == {
        "boom": "failed",
        "after": "upstream_failed",
        "aside": "success",
    }
    assert workspace.task(run, "boom")["exit_code"] == 3
    assert task_lines(result.stdout, "boom")[-1].startswith("failed")
    assert "exit code 3" in task_lines(result.stdout, "boom")[-1]
    assert task_lines(result.stdout, "after") == [
        "upstream_failed: upstream task 'boom' did not succeed"
    ]
    assert "oops" in (run / "logs" / "boom.log").read_text()


@pytest.mark.parametrize(
    "args", [("run", "etl", "--verbose"), ("run", "etl", "-v"), ("--verbose", "run", "etl")]
)
def test_verbose_prefixes_each_output_line_with_its_task(workspace, pit, args):
    workspace.shell_project(
        "etl",
        {"extract": "echo one\necho two\nprintf 'no newline'\n", "load": "echo loading\n"},
        depends_on=LOAD_AFTER_EXTRACT,
    )

    result = pit(*args)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith("[")] == [
        "[extract] one",
        "[extract] two",
        "[extract] no newline",
        "[load] loading",
    ]


def test_one_task_runs_alone_and_warns_about_its_dependencies(workspace, pit):
    workspace.shell_project(
        "etl",
        {"extract": "echo extracting\n", "load": "echo loading\n", "aside": "echo aside\n"},
        depends_on=LOAD_AFTER_EXTRACT,
    )

    result = pit("run", "etl/load")

    assert result.returncode == 0, result.stderr
    assert workspace.task_states(workspace.only_run("etl")) == {
        "extract": "skipped",
        "load": "success",
        "aside": "skipped",
    }
    (warning,) = result.stderr.splitlines()
    assert warning.startswith("pit: warning: ")
    assert "'load'" in warning
    assert "extract" in warning


def test_one_task_without_dependencies_gives_no_warning(workspace, pit):
    workspace.shell_project("etl", TWO_STEPS, depends_on=LOAD_AFTER_EXTRACT)

    result = pit("run", "etl/extract")

    assert result.returncode == 0
    assert result.stderr == ""
    assert workspace.task_states(workspace.only_run("etl")) == {
        "extract": "success",
        "load": "skipped",
    }


@pytest.mark.parametrize(
    ("target", "hint"),
    [("elt", "did you mean 'etl'?"), ("etl/laod", "did you mean 'load'?")],
)
def test_unknown_names_suggest_the_close_one(workspace, pit, target, hint):
    workspace.shell_project("etl", TWO_STEPS, depends_on=LOAD_AFTER_EXTRACT)

    result = pit("run", target)

    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("pit: ")
    assert hint in line
    assert workspace.run_dirs("etl") == []


def test_a_dag_with_problems_does_not_run(workspace, pit):
    workspace.project(
        "etl",
        """
        [dag]
        name = "etl"

        [[tasks]]
        name = "a"
        script = "tasks/missing.sh"
        """,
    )

    result = pit("run", "etl")

    assert result.returncode == 2
    assert "tasks[0].script" in result.stderr
    assert "Traceback" not in result.stderr
    assert workspace.run_dirs("etl") == []


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        # Were it used, this typo would make the run delete its logs, snapshot and data.
        # (An unknown key only warns: tests/cli/test_validate.py, unknown config key.)
        ('keep_artifacts = ["log"]\n', "keep_artifacts"),
        ('runs_dir = "history\n', "line 1"),
    ],
    ids=["bad-value", "bad-toml"],
)
def test_pit_config_problems_stop_the_run(workspace, pit, config, problem):
    workspace.shell_project("etl", TWO_STEPS)
    workspace.config(config)

    result = pit("run", "etl")

    # Like a DAG with problems: refused, naming the file and the problem, before any run starts.
    assert result.returncode == 2, result.stdout
    assert "pit_config.toml" in result.stderr
    assert problem in result.stderr
    assert "Traceback" not in result.stderr
    assert workspace.run_dirs("etl") == []


def test_an_unusable_runs_dir_is_a_one_line_error(workspace, pit):
    workspace.shell_project("etl", TWO_STEPS)
    workspace.write("blocker", "a file where the runs folder should go\n")
    workspace.config('runs_dir = "blocker/runs"\n')

    result = pit("run", "etl")

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("pit: cannot create a run folder under ")
    assert "blocker/runs" in line


def test_runs_dir_from_pit_config_is_used_by_run_and_logs(workspace, pit):
    workspace.shell_project("etl", TWO_STEPS)
    workspace.config('runs_dir = "history/pit"\n')

    ran = pit("run", "etl")
    logs = pit("logs", "etl/load")

    assert ran.returncode == 0, ran.stderr
    run = workspace.only_run("etl", runs_dir="history/pit")
    assert workspace.task_states(run) == {"extract": "success", "load": "success"}
    assert not (workspace.root / "runs").exists()
    assert logs.returncode == 0, logs.stderr
    assert "loading" in logs.stdout


def test_snapshot_data_dir_and_environment_reach_the_task(workspace, pit):
    workspace.shell_project(
        "etl",
        {
            "extract": """\
            echo "$PIT_DAG_NAME/$PIT_TASK_NAME run=$PIT_RUN_ID attempt=$PIT_ATTEMPT cwd=$(pwd)"
            echo data > "$PIT_DATA_DIR/out.txt"
            """
        },
    )

    result = pit("run", "etl")

    assert result.returncode == 0, result.stderr
    run = workspace.only_run("etl")
    log = (run / "logs" / "extract.log").read_text()
    assert f"etl/extract run={run.name} attempt=1 cwd={run / 'project'}" in log
    assert (run / "data" / "out.txt").read_text() == "data\n"
    assert (run / "project" / "pit.toml").is_file()


@pytest.mark.parametrize(
    ("workspace_keep", "project_keep", "kept"),
    [
        (None, None, {"logs", "project", "data"}),
        ('["logs"]', None, {"logs"}),
        ('["logs"]', '["data", "project"]', {"data", "project"}),
        (None, "[]", set()),
    ],
)
def test_keep_artifacts_per_project_wins_over_workspace(
    workspace, pit, workspace_keep, project_keep, kept
):
    workspace.shell_project(
        "etl",
        TWO_STEPS,
        dag_keys=f"keep_artifacts = {project_keep}" if project_keep else "",
    )
    if workspace_keep:
        workspace.config(f"keep_artifacts = {workspace_keep}\n")

    result = pit("run", "etl")

    assert result.returncode == 0, result.stderr
    run = workspace.only_run("etl")
    assert {p.name for p in run.iterdir()} == {"run.json", *kept}
    assert workspace.manifest(run)["state"] == "success"


def on_terminal(pit, *args: str) -> tuple[int, str]:
    """Run `pit -C ws args...` with a pseudo-terminal as stdin, stdout and stderr; return its
    exit code and everything it wrote."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        pit.argv(args),
        cwd=pit.root,
        env=pit.env({"TERM": "xterm-256color", "COLUMNS": "120"}),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
    )
    os.close(terminal)
    chunks = []
    deadline = time.monotonic() + TERMINAL_HANG_GUARD
    try:
        while True:
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                pytest.fail(f"pit {' '.join(args)} did not end on a terminal: {b''.join(chunks)!r}")
            ready, _, _ = select.select([controller], [], [], 0.5)
            if not ready:
                continue
            try:
                data = os.read(controller, 1 << 16)
            except OSError:  # EIO: pit and its tasks closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(controller)
    return process.wait(timeout=TERMINAL_HANG_GUARD), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize(
    ("script", "exit_code", "final_state"),
    [("echo loading", 0, "success"), ("exit 4", 1, "failed")],
)
def test_live_view_on_a_terminal_ends_with_the_run(workspace, pit, script, exit_code, final_state):
    workspace.shell_project(
        "etl",
        {"extract": "echo extracting\n", "load": script + "\n"},
        depends_on=LOAD_AFTER_EXTRACT,
    )

    code, output = on_terminal(pit, "run", "etl", "--verbose")

    assert code == exit_code, output
    assert "\x1b[" in output  # styled: the live table, not the plain lines
    assert "[extract] extracting" in output
    run = workspace.only_run("etl")
    assert f"run {run.name} {final_state}" in output
    assert workspace.task_states(run)["load"] == final_state
