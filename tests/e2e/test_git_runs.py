"""`pit run` of a git-backed DAG: its code comes from the remote at the ref, its pit.toml from
the workspace, and a push between two runs is what the second one runs."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from pit.store.repos import checked_out
from tests.conftest import Pit, Workspace, wait_until
from tests.e2e.test_serve import serve
from tests.gitremote import Upstream, git

pytestmark = [pytest.mark.e2e]


def git_project(workspace: Workspace, url: str, ref: str = "main", extra: str = "") -> Path:
    return workspace.project(
        "claims",
        f'[dag]\nname = "claims"\ngit_url = "{url}"\ngit_ref = "{ref}"\n{extra}\n'
        '[[tasks]]\nname = "extract"\nscript = "tasks/extract.sh"\n',
    )


def test_a_git_backed_dag_runs_the_remote_code_and_sees_a_push(
    workspace: Workspace, pit: Pit, tmp_path: Path
) -> None:
    upstream = Upstream(tmp_path / "remote")
    first = upstream.commit({"tasks/extract.sh": "echo version one\n"})
    git_project(workspace, upstream.url)
    assert not (workspace.root / "projects" / "claims" / "tasks").exists()

    done = pit("run", "claims")
    assert done.returncode == 0, done.stderr
    (run,) = workspace.run_dirs("claims")
    assert (run / "logs" / "extract.log").read_text().endswith("version one\n")
    assert workspace.manifest(run)["code_version"] == f"git:{first}"
    assert workspace.manifest(run)["code_commit"] == first
    assert (run / "project" / "pit.toml").read_text().startswith('[dag]\nname = "claims"')
    assert not (run / "project" / ".git").exists()
    assert (workspace.root / "repo_cache" / "claims" / ".git").is_dir()

    second = upstream.commit({"tasks/extract.sh": "echo version two\n"})
    done = pit("run", "claims")
    assert done.returncode == 0, done.stderr
    latest = workspace.run_dirs("claims")[-1]
    assert (latest / "logs" / "extract.log").read_text().endswith("version two\n")
    assert workspace.manifest(latest)["code_version"] == f"git:{second}"


def test_an_unknown_ref_fails_the_run_before_any_task(
    workspace: Workspace, pit: Pit, tmp_path: Path
) -> None:
    upstream = Upstream(tmp_path / "remote")
    upstream.commit({"tasks/extract.sh": "echo hi\n"})
    git_project(workspace, upstream.url, ref="release-9")
    done = pit("run", "claims")
    assert done.returncode != 0
    assert "git ref 'release-9' is not a branch, a tag or a commit" in done.stderr
    (run,) = workspace.run_dirs("claims")
    manifest = workspace.manifest(run)
    assert manifest["state"] == "failed"
    assert "release-9" in manifest["error"]
    assert not (run / "logs" / "extract.log").exists()


def test_offline_ok_runs_the_last_checkout_and_the_record_says_so(
    workspace: Workspace, pit: Pit, tmp_path: Path
) -> None:
    upstream = Upstream(tmp_path / "remote")
    commit = upstream.commit({"tasks/extract.sh": "echo cached\n"})
    git_project(workspace, upstream.url, extra="offline_ok = true")
    assert pit("run", "claims").returncode == 0
    upstream.bare.rename(tmp_path / "unreachable.git")
    done = pit("run", "claims")
    assert done.returncode == 0, done.stderr
    latest = workspace.run_dirs("claims")[-1]
    manifest = workspace.manifest(latest)
    assert manifest["code_version"] == f"git:{commit}"
    assert manifest["code_note"].startswith("offline_ok: ran the last checkout")
    assert (latest / "logs" / "extract.log").read_text().endswith("cached\n")


def test_a_rerun_runs_the_failed_runs_commit_unless_asked_for_the_latest(
    workspace: Workspace, pit: Pit, tmp_path: Path
) -> None:
    upstream = Upstream(tmp_path / "remote")
    broken = upstream.commit({"tasks/extract.sh": "echo broken; exit 3\n"})
    git_project(workspace, upstream.url)
    assert pit("run", "claims").returncode != 0
    failed = workspace.run_dirs("claims")[-1].name
    fixed = upstream.commit({"tasks/extract.sh": "echo fixed\n"})

    assert pit("rerun", failed).returncode != 0  # the snapshot's code: still broken
    again = workspace.run_dirs("claims")[-1]
    assert workspace.manifest(again)["code_version"] == f"git:{broken}"

    done = pit("rerun", failed, "--latest-code")
    assert done.returncode == 0, done.stderr
    latest = workspace.run_dirs("claims")[-1]
    assert workspace.manifest(latest)["code_version"] == f"git:{fixed}"


def test_a_python_task_of_a_git_backed_dag_runs_in_the_clones_project(
    workspace: Workspace, pit: Pit, tmp_path: Path
) -> None:
    upstream = Upstream(tmp_path / "remote")
    upstream.commit(
        {
            "pyproject.toml": '[project]\nname = "claims"\nversion = "0"\n'
            'requires-python = ">=3.11"\ndependencies = []\n',
            "tasks/extract.py": "import sys\nprint('python', sys.prefix)\n",
        }
    )
    workspace.project(
        "claims",
        f'[dag]\nname = "claims"\ngit_url = "{upstream.url}"\ngit_ref = "main"\n'
        '[[tasks]]\nname = "extract"\nscript = "tasks/extract.py"\n',
    )
    done = pit("run", "claims")
    assert done.returncode == 0, done.stderr
    log = (workspace.run_dirs("claims")[-1] / "logs" / "extract.log").read_text()
    assert f"python {workspace.root / 'repo_cache' / 'claims' / '.venv'}" in log


def test_pit_sync_fetches_ahead_and_says_what_changed(
    workspace: Workspace, pit: Pit, tmp_path: Path
) -> None:
    upstream = Upstream(tmp_path / "remote")
    first = upstream.commit({"tasks/extract.sh": "echo one\n"})
    git_project(workspace, upstream.url)
    workspace.shell_project("local", {"a": "true\n"})

    done = pit("sync")
    assert done.returncode == 0, done.stderr
    assert f"claims: cloned at {first[:12]}" in done.stdout
    second = upstream.commit({"tasks/extract.sh": "echo two\n"})
    done = pit("sync", "claims")
    assert f"claims: {first[:12]} -> {second[:12]}" in done.stdout
    done = pit("sync", "--json")
    (result,) = json.loads(done.stdout)
    assert result == {
        "dag": "claims",
        "before": second,
        "after": second,
        "changed": False,
        "venv": None,
        "dbt": None,
        "error": None,
    }
    assert (workspace.root / "repo_cache" / "claims" / "tasks" / "extract.sh").is_file()

    wrong = pit("sync", "local")
    assert wrong.returncode == 2
    assert "'local' is not a git-backed DAG here (git-backed DAGs: claims)" in wrong.stderr


def test_pit_sync_of_an_unreachable_remote_fails_that_dag(
    workspace: Workspace, pit: Pit, tmp_path: Path
) -> None:
    git_project(workspace, (tmp_path / "nowhere.git").as_uri())
    done = pit("sync")
    assert done.returncode == 1
    assert "claims: failed: git fetch of file://" in done.stdout


def test_validate_remote_looks_the_ref_up(workspace: Workspace, pit: Pit, tmp_path: Path) -> None:
    upstream = Upstream(tmp_path / "remote")
    upstream.commit({"tasks/extract.sh": "echo hi\n"})
    git_project(workspace, upstream.url, ref="release")
    assert pit("validate").returncode == 0  # without --remote: no git
    done = pit("validate", "--remote")
    assert done.returncode == 1
    assert "has no branch or tag 'release'" in done.stdout
    git_project(workspace, upstream.url, ref="main")
    assert pit("validate", "--remote").returncode == 0


def test_a_local_project_in_a_git_work_tree_records_its_commit(
    workspace: Workspace, pit: Pit
) -> None:
    workspace.shell_project("local", {"a": "echo hi\n"})
    assert pit("run", "local").returncode == 0
    outside = workspace.manifest(workspace.run_dirs("local")[-1])
    assert outside["code_commit"] is None
    assert outside["code_version"].startswith("sha256:")

    subprocess.run(["git", "init", "--quiet", "-b", "main", str(workspace.root)], check=True)
    git(workspace.root, "add", "projects")
    git(workspace.root, "commit", "--quiet", "-m", "the project")
    head = git(workspace.root, "rev-parse", "HEAD")
    assert pit("run", "local").returncode == 0
    inside = workspace.manifest(workspace.run_dirs("local")[-1])
    assert inside["code_commit"] == head
    assert inside["code_version"] == outside["code_version"]  # the same files
    listing = pit("logs", "local", "--list").stdout
    assert f"@{head[:7]}" in listing


def test_pit_serve_fetches_every_sync_interval(
    workspace: Workspace, pit: Pit, tmp_path: Path
) -> None:
    upstream = Upstream(tmp_path / "remote")
    first = upstream.commit({"tasks/extract.sh": "echo one\n"})
    git_project(workspace, upstream.url, extra='schedule = "0 0 1 1 *"')
    workspace.config('sync_interval = "1s"\n')
    clone = workspace.root / "repo_cache" / "claims"
    with serve(pit, workspace) as server:
        wait_until(lambda: checked_out(clone) == first, timeout=30, what="the first sync")
        second = upstream.commit({"tasks/extract.sh": "echo two\n"})
        wait_until(lambda: checked_out(clone) == second, timeout=30, what="the push synced")
        server.signal(signal.SIGTERM)
        assert server.exit_code() == 0
        assert f"claims: {first[:12]} -> {second[:12]} (main)" in server.output()
