"""The clones of git-backed DAGs (`pit.store.repos`), with the real git and local bare
repositories (file://): branches, tags and SHAs, a push between two runs, an unknown ref, a clone
cut short, a remote that hangs, and `offline_ok`."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pit.errors import RunError
from pit.store.repos import Checkout, GitSource, check_out, masked, work_tree_commit
from tests.gitremote import Upstream, git
from tests.pgcluster import free_port


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    return Upstream(tmp_path)


def source(tmp_path: Path, upstream: Upstream, ref: str = "main", **kw: object) -> GitSource:
    return GitSource(url=upstream.url, ref=ref, clone=tmp_path / "repo_cache" / "dag", **kw)  # type: ignore[arg-type]


def test_a_branch_is_cloned_then_fetched_so_a_push_between_two_runs_is_seen(
    tmp_path: Path, upstream: Upstream
) -> None:
    first = upstream.commit({"tasks/a.sh": "echo one\n"})
    checkout = check_out(source(tmp_path, upstream))
    assert checkout == Checkout(path=tmp_path / "repo_cache" / "dag", commit=first)
    assert (checkout.path / "tasks" / "a.sh").read_text() == "echo one\n"
    second = upstream.commit({"tasks/a.sh": "echo two\n", "tasks/b.sh": "echo b\n"})
    again = check_out(source(tmp_path, upstream))
    assert again.commit == second
    assert (again.path / "tasks" / "a.sh").read_text() == "echo two\n"
    assert (again.path / "tasks" / "b.sh").is_file()


def test_a_tag_and_a_commit_sha_are_checked_out_as_named(
    tmp_path: Path, upstream: Upstream
) -> None:
    tagged = upstream.commit({"v.txt": "1\n"})
    git(upstream.work, "tag", "v1")
    git(upstream.work, "push", "--quiet", "origin", "v1")
    upstream.commit({"v.txt": "2\n"})
    assert check_out(source(tmp_path, upstream, "v1")).commit == tagged
    assert (tmp_path / "repo_cache" / "dag" / "v.txt").read_text() == "1\n"
    assert check_out(source(tmp_path, upstream, tagged[:12])).commit == tagged
    assert check_out(source(tmp_path, upstream, "main")).commit != tagged


def test_what_a_run_left_in_the_clone_is_cleaned_away(tmp_path: Path, upstream: Upstream) -> None:
    upstream.commit({"a.txt": "a\n"})
    clone = check_out(source(tmp_path, upstream)).path
    (clone / "a.txt").write_text("edited\n")
    (clone / "stray.txt").write_text("left behind\n")
    check_out(source(tmp_path, upstream))
    assert (clone / "a.txt").read_text() == "a\n"
    assert not (clone / "stray.txt").exists()


def test_an_unknown_ref_fails_naming_it(tmp_path: Path, upstream: Upstream) -> None:
    upstream.commit({"a.txt": "a\n"})
    with pytest.raises(RunError, match=r"git ref 'no-such-branch' is not a branch, a tag or a"):
        check_out(source(tmp_path, upstream, "no-such-branch"))


def test_a_clone_cut_short_is_made_again(tmp_path: Path, upstream: Upstream) -> None:
    commit = upstream.commit({"a.txt": "a\n"})
    clone = tmp_path / "repo_cache" / "dag"
    (clone / "half").mkdir(parents=True)  # no .git: a clone that never finished
    (tmp_path / "repo_cache" / ".dag.cloning").mkdir()
    assert check_out(source(tmp_path, upstream)).commit == commit
    assert not (clone / "half").exists()
    assert not (tmp_path / "repo_cache" / ".dag.cloning").exists()


def test_a_remote_that_never_answers_is_stopped_at_fetch_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "ssh-ran"
    # An ssh that hangs: git waits on it as on a remote that never answers.
    monkeypatch.setenv("GIT_SSH_COMMAND", f"touch {marker}; exec sleep 61.25 #")
    hanging = GitSource(
        url="ssh://pit-test.invalid/repo.git", ref="main", clone=tmp_path / "c", fetch_timeout=1
    )
    started = time.monotonic()
    with pytest.raises(RunError, match=r"took over 1s \(fetch_timeout\)"):
        check_out(hanging)
    assert time.monotonic() - started < 15
    assert marker.is_file()
    left = subprocess.run(["pgrep", "-f", "sleep 61.25"], capture_output=True, check=False)
    assert left.stdout == b""  # the hanging ssh was killed with git


def test_offline_ok_runs_from_the_last_checkout_when_the_fetch_fails(
    tmp_path: Path, upstream: Upstream
) -> None:
    commit = upstream.commit({"a.txt": "a\n"})
    check_out(source(tmp_path, upstream))
    upstream.bare.rename(tmp_path / "gone.git")
    with pytest.raises(RunError, match=r"git fetch of file://.* failed"):
        check_out(source(tmp_path, upstream))
    offline = check_out(source(tmp_path, upstream, offline_ok=True))
    assert offline.commit == commit
    assert offline.offline is not None
    assert "failed" in offline.offline


def test_a_password_in_a_url_is_never_shown() -> None:
    assert masked("https://bob:s3cret@git.example/x.git") == "https://***@git.example/x.git"
    assert masked("fatal: https://tok@host/r: denied") == "fatal: https://***@host/r: denied"
    assert masked("git@github.com:company/claims.git") == "git@github.com:company/claims.git"


def test_the_fetch_error_masks_the_password(tmp_path: Path) -> None:
    source = GitSource(
        url="https://bob:s3cret@127.0.0.1:9/repo.git", ref="main", clone=tmp_path / "c"
    )
    with pytest.raises(RunError) as caught:
        check_out(source)
    assert "s3cret" not in str(caught.value)
    assert "***@127.0.0.1" in str(caught.value)


def test_the_clones_venv_survives_a_checkout(tmp_path: Path, upstream: Upstream) -> None:
    upstream.commit({"pyproject.toml": "[project]\nname = 'x'\n"})
    clone = check_out(source(tmp_path, upstream)).path
    (clone / ".venv" / "bin").mkdir(parents=True)
    upstream.commit({"b.txt": "b\n"})
    check_out(source(tmp_path, upstream))
    assert (clone / ".venv" / "bin").is_dir()


@pytest.fixture
def git_daemon(tmp_path: Path, upstream: Upstream) -> Iterator[str]:
    """`git daemon` serving the upstream over git:// on 127.0.0.1; its base URL."""
    port = free_port()
    daemon = subprocess.Popen(
        [
            "git",
            "daemon",
            "--export-all",
            "--reuseaddr",
            "--listen=127.0.0.1",
            f"--port={port}",
            f"--base-path={upstream.bare.parent}",
            str(upstream.bare.parent),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"git://127.0.0.1:{port}"
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


def test_a_remote_served_by_git_daemon_is_fetched(
    tmp_path: Path, upstream: Upstream, git_daemon: str
) -> None:
    first = upstream.commit({"a.txt": "one\n"})
    over_git = GitSource(url=f"{git_daemon}/origin.git", ref="main", clone=tmp_path / "c")
    assert check_out(over_git).commit == first
    second = upstream.commit({"a.txt": "two\n"})
    assert check_out(over_git).commit == second
    assert (tmp_path / "c" / "a.txt").read_text() == "two\n"


def test_the_commit_of_a_work_tree_is_read_from_its_files(
    tmp_path: Path, upstream: Upstream
) -> None:
    work = upstream.work
    commit = upstream.commit({"projects/etl/pit.toml": "x\n"})
    assert work_tree_commit(work / "projects" / "etl") == commit
    git(work, "pack-refs", "--all")  # the branch now only in packed-refs
    assert not (work / ".git" / "refs" / "heads" / "main").exists()
    assert work_tree_commit(work / "projects" / "etl") == commit
    linked = tmp_path / "linked"
    git(work, "worktree", "add", "--quiet", "--detach", str(linked), commit)
    assert work_tree_commit(linked / "projects") == commit  # .git is a file there
    second = upstream.commit({"b.txt": "b\n"})
    git(linked, "checkout", "--quiet", "-b", "side", second)
    assert work_tree_commit(linked) == second
    assert work_tree_commit(tmp_path / "elsewhere") is None
    empty = tmp_path / "empty"
    subprocess.run(["git", "init", "--quiet", str(empty)], check=True)
    assert work_tree_commit(empty) is None  # a branch with no commit yet


def test_concurrent_check_outs_of_one_clone_take_turns(tmp_path: Path, upstream: Upstream) -> None:
    """Runs of one DAG and `pit sync` at once: each waits for the clone's lock, none sees a
    half-made clone, and all end on the ref's commit."""
    commit = upstream.commit({"a.txt": "a\n"})
    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(lambda _: check_out(source(tmp_path, upstream)), range(8)))
    assert {checkout.commit for checkout in done} == {commit}
    clone = tmp_path / "repo_cache" / "dag"
    assert git(clone, "status", "--porcelain") == ""
    assert not (tmp_path / "repo_cache" / ".dag.cloning").exists()
