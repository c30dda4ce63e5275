"""`pit new <dir>`: a workspace that validates and runs as created, and keeps secrets and runs
out of git."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from tests.conftest import Pit


def test_a_new_workspace_runs_its_example_at_once(pit: Pit, tmp_path: Path) -> None:
    where = tmp_path / "analytics"
    done = pit("new", str(where))
    assert done.returncode == 0, done.stderr
    assert f"pit -C {where} run hello" in done.stdout
    assert pit("-C", str(where), "validate").returncode == 0
    ran = pit("-C", str(where), "run", "hello")
    assert ran.returncode == 0, ran.stderr
    assert stat.S_IMODE((where / "secrets.toml").stat().st_mode) == 0o600
    assert 'secrets_dir = "secrets.toml"' in (where / "pit_config.toml").read_text()
    assert (where / "README.md").read_text().startswith("# analytics\n")

    subprocess.run(["git", "init", "--quiet", str(where)], check=True)
    ignored = subprocess.run(
        ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=all"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "secrets.toml" not in ignored
    assert "runs/" not in ignored
    assert ".pit/" not in ignored
    assert "projects/hello/pit.toml" in ignored  # the project itself is for git


def test_a_folder_that_is_not_empty_is_refused(pit: Pit, tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine\n")
    done = pit("new", str(tmp_path / "busy"))
    assert done.returncode == 2
    assert "already exists and is not an empty folder" in done.stderr
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["notes.txt"]
    assert pit("new", str(tmp_path / "fresh" / "nested")).returncode == 0
