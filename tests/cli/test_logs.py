"""`pit logs dag[/task]`: the latest run, --run-id, --list (--json), and -f on a running run."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e

SAY_RUN = {"extract": 'echo "extract in $PIT_RUN_ID"\n', "load": 'echo "load in $PIT_RUN_ID"\n'}


@pytest.fixture(scope="module")
def ran_twice(tmp_path_factory, make_workspace):
    """`pit` for a workspace where `etl` ran twice, its tasks printing their run id, and the two
    run ids, oldest first. Tests only read it."""
    workspace, pit = make_workspace(tmp_path_factory.mktemp("ran_twice"))
    workspace.shell_project("etl", SAY_RUN, depends_on={"load": ["extract"]})
    for _ in range(2):
        assert pit("run", "etl").returncode == 0
    return pit, [run.name for run in workspace.run_dirs("etl")]


def test_logs_show_every_task_of_the_latest_run(ran_twice):
    pit, (first, latest) = ran_twice

    result = pit("logs", "etl")

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "==> extract (success) <==" in out
    assert "==> load (success) <==" in out
    assert out.index("==> extract") < out.index(f"extract in {latest}") < out.index("==> load")
    assert f"load in {latest}" in out
    assert first not in out


def test_logs_of_one_task(ran_twice):
    pit, (_, latest) = ran_twice

    result = pit("logs", "etl/load")

    assert result.returncode == 0, result.stderr
    assert f"load in {latest}" in result.stdout
    assert "extract in" not in result.stdout
    assert "==>" not in result.stdout


def test_run_id_picks_an_older_run(ran_twice):
    pit, (first, latest) = ran_twice

    result = pit("logs", "etl/extract", "--run-id", first)

    assert result.returncode == 0, result.stderr
    assert f"extract in {first}" in result.stdout
    assert latest not in result.stdout


def test_unknown_run_id_points_at_list(ran_twice):
    pit, _ = ran_twice
    result = pit("logs", "etl", "--run-id", "20000101_000000.000_etl")

    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "20000101_000000.000_etl" in line
    assert "--list" in line


def test_list_shows_runs_newest_first(ran_twice):
    pit, two_runs = ran_twice
    result = pit("logs", "etl", "--list")

    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert [row[0] for row in rows] == two_runs[::-1]
    assert all(row[1] == "success" and row[2] == "manual" for row in rows)


def test_list_json_gives_the_run_records(ran_twice):
    pit, two_runs = ran_twice
    result = pit("logs", "etl", "--list", "--json")

    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert [r["run_id"] for r in records] == two_runs[::-1]
    assert [r["state"] for r in records] == ["success", "success"]
    assert [t["name"] for t in records[0]["tasks"]] == ["extract", "load"]


def test_a_run_folder_without_run_json_is_listed_as_unknown(workspace, pit):
    workspace.shell_project("etl", SAY_RUN)
    assert pit("run", "etl").returncode == 0
    crashed = workspace.root / "runs" / "20000101_000000.000_etl"
    crashed.mkdir()  # a run whose pit died before its first write, or from an older pit

    listing = pit("logs", "etl", "--list", "--json")
    table = pit("logs", "etl", "--list")
    latest = pit("logs", "etl")

    records = json.loads(listing.stdout)
    assert records[-1] == {"run_id": crashed.name, "state": "unknown"}
    assert records[0]["state"] == "success"
    assert table.stdout.splitlines()[-1].split()[:2] == [crashed.name, "unknown"]
    assert latest.returncode == 0, latest.stderr


def test_a_target_with_an_empty_task_name_is_an_error(ran_twice):
    pit, _ = ran_twice
    result = pit("logs", "etl/")

    assert result.returncode == 2
    assert "names no DAG and task" in result.stderr


def test_logs_of_a_dag_that_never_ran(workspace, pit):
    workspace.shell_project("etl", SAY_RUN)

    result = pit("logs", "etl")
    listing = pit("logs", "etl", "--list", "--json")

    assert result.returncode == 2
    assert "pit run etl" in result.stderr
    assert "Traceback" not in result.stderr
    assert listing.returncode == 0
    assert json.loads(listing.stdout) == []


def test_unknown_task_lists_the_tasks(ran_twice):
    pit, _ = ran_twice
    result = pit("logs", "etl/lod")

    assert result.returncode == 2
    assert "extract, load" in result.stderr


@pytest.mark.slow
def test_follow_prints_output_as_it_comes_and_ends_with_the_run(
    workspace, pit, tmp_path, wait_until
):
    gate = tmp_path / "gate"
    workspace.shell_project(
        "etl",
        {
            "talk": f"""\
            echo first line
            while [ ! -e {gate} ]; do sleep 0.05; done
            echo second line
            """,
            "after": "echo after done\n",
        },
        depends_on={"after": ["talk"]},
    )
    run = pit.start("run", "etl")
    wait_until(lambda: workspace.running_task("etl", "talk"), what="the task to be running")

    follow = pit.start("logs", "etl", "-f")
    wait_until(lambda: "first line" in follow.stdout(), what="`pit logs -f` to print line one")
    assert follow.process.poll() is None, "`pit logs -f` ended while the run was still going"
    gate.touch()

    assert follow.wait() == 0, follow.stderr()
    assert run.wait() == 0, run.stdout()
    lines = follow.stdout().splitlines()
    assert "[talk] first line" in lines
    assert "[talk] second line" in lines
    assert "[after] after done" in lines
    assert workspace.manifest(workspace.only_run("etl"))["state"] == "success"


@pytest.mark.slow
def test_follow_one_task_prints_its_lines_unprefixed(workspace, pit, tmp_path, wait_until):
    gate = tmp_path / "gate"
    workspace.shell_project(
        "etl",
        {"talk": f"echo first\nwhile [ ! -e {gate} ]; do sleep 0.05; done\necho second\n"},
    )
    run = pit.start("run", "etl")
    wait_until(lambda: workspace.running_task("etl", "talk"), what="the task to be running")

    follow = pit.start("logs", "etl/talk", "--follow")
    wait_until(lambda: "first" in follow.stdout(), what="`pit logs -f` to print line one")
    gate.touch()

    assert follow.wait() == 0, follow.stderr()
    assert run.wait() == 0
    assert follow.stdout().splitlines()[1:] == ["first", "second"]  # after the attempt header
