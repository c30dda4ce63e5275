"""`pit init NAME --type ...`: each scaffold validates, and runs, as created."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e

TYPES = ["python", "sql", "shell", "dbt"]


@pytest.mark.parametrize("project_type", TYPES)
def test_scaffold_validates(workspace, pit, project_type):
    created = pit("init", "fresh", "--type", project_type)
    validated = pit("validate", "--json")

    assert created.returncode == 0, created.stderr
    assert (workspace.root / "projects" / "fresh" / "pit.toml").is_file()
    assert validated.returncode == 0, validated.stdout
    assert validated.stdout.strip() == "[]"


@pytest.mark.parametrize("project_type", ["python", "sql", "shell"])
def test_scaffold_runs_straight_away(workspace, pit, project_type):
    # Python tasks run through `uv run --project`; the scaffold has no dependencies, so uv needs
    # no network.
    assert pit("init", "fresh", "-t", project_type).returncode == 0

    result = pit("run", "fresh", env={"UV_OFFLINE": "1"})

    assert result.returncode == 0, result.stdout + result.stderr
    run = workspace.only_run("fresh")
    states = workspace.task_states(run)
    assert len(states) == 2
    assert set(states.values()) == {"success"}


def test_python_is_the_default_type(workspace, pit):
    result = pit("init", "fresh")

    assert result.returncode == 0, result.stderr
    assert "python" in result.stdout
    assert (workspace.root / "projects" / "fresh" / "pyproject.toml").is_file()


def test_refuses_an_existing_project(workspace, pit):
    assert pit("init", "fresh", "--type", "shell").returncode == 0
    toml = workspace.root / "projects" / "fresh" / "pit.toml"
    toml.write_text(toml.read_text() + "# edited by hand\n")

    result = pit("init", "fresh", "--type", "sql")

    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "already exists" in line
    assert toml.read_text().endswith("# edited by hand\n")
    assert not (workspace.root / "projects" / "fresh" / "tasks" / "staging.sql").exists()


@pytest.mark.parametrize(
    ("args", "messages"),
    [
        (("fresh", "--type", "java"), ["unknown project type 'java'", "python, sql, shell, dbt"]),
        (("9lives",), ["not a usable project name", "start with a letter"]),
    ],
)
def test_refuses_a_bad_type_or_name(workspace, pit, args, messages):
    result = pit("init", *args)

    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert all(message in line for message in messages)
    assert list((workspace.root / "projects").iterdir()) == []


@pytest.mark.slow
def test_the_dbt_scaffold_runs_as_created_on_its_embedded_database(workspace, pit):
    created = pit("init", "shop", "--type", "dbt")
    assert created.returncode == 0, created.stderr
    secrets = workspace.root / "shop.secrets.toml"
    assert f"run:      pit -C {workspace.root} --secrets {secrets} run shop" in created.stdout
    assert (secrets.stat().st_mode & 0o777) == 0o600

    result = pit("--secrets", str(secrets), "run", "shop")

    assert result.returncode == 0, result.stdout + result.stderr
    assert set(workspace.task_states(workspace.only_run("shop")).values()) == {"success"}
    assert (workspace.root / "shop.duckdb").is_file()


def test_the_dbt_scaffold_says_what_to_add_to_a_secrets_file_in_use(workspace, pit):
    secrets = workspace.write("secrets.toml", "[global]\n")
    created = pit("--secrets", str(secrets), "init", "shop", "--type", "dbt")
    assert created.returncode == 0, created.stderr
    assert f"add its connection to {secrets}" in created.stdout
    assert "[shop.shop_db]" in created.stdout
    assert secrets.read_text() == "[global]\n"  # never edited
    assert not (workspace.root / "shop.secrets.toml").exists()
