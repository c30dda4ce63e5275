"""The clones of git-backed DAGs: `repo_cache/<dag>/`, fetched and checked out before each run.

The system `git` does the work (the user's SSH agent, credential helpers and config apply; it
never prompts). One lock per clone (`<dag>.lock`, flock) keeps concurrent runs of the DAG and
`pit sync` from stepping on each other. A clone is made in a temporary folder and renamed into
place, so a clone cut short (a crash, a timeout) is never taken for a good one: it is made again.
Every git command runs in a session of its own and is killed, with whatever it started (ssh, a
remote helper), when `timeout` runs out. What git says is passed on with any password in a URL
masked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import attrs

from pit.errors import RunError
from pit.spec.dag import DagSpec
from pit.spec.defaults import DEFAULT_FETCH_TIMEOUT

_SHA = re.compile(r"[0-9a-f]{7,40}")
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",  # never wait on a password prompt nobody sees
    "GIT_ASKPASS": "true",
    "LC_ALL": "C",  # git's messages as the docs and the tests know them
}


@attrs.frozen(kw_only=True)
class GitSource:
    """Where a git-backed DAG's code comes from."""

    url: str
    ref: str
    """A branch, a tag or a commit SHA."""
    clone: Path
    """Its clone, `<repo_cache_dir>/<dag>`."""
    fetch_timeout: float = DEFAULT_FETCH_TIMEOUT
    offline_ok: bool = False
    """When the fetch fails, run from the commit last checked out (if any) instead of failing."""


@attrs.frozen(kw_only=True)
class Checkout:
    path: Path
    commit: str
    offline: str | None = None
    """Why the fetch failed when the run goes on from the last checkout (`offline_ok`)."""


def masked(text: str) -> str:
    """`text` with the user and password of any URL in it hidden."""
    return _USERINFO.sub("***@", text)


def check_out(source: GitSource) -> Checkout:
    """Fetch the clone (making it first if need be) and check out `source.ref`; raises RunError
    with git's own words when that cannot be done. Blocking: call it in a worker thread."""
    source.clone.parent.mkdir(parents=True, exist_ok=True)
    git = _Git(source.clone, source.url, source.fetch_timeout)
    with _locked(source.clone):
        try:
            if _complete(source.clone):
                git.run("remote", "set-url", "origin", source.url)  # git_url may have changed
                git.run(*_FETCH)
            else:
                _clone(source)
        except RunError as failure:
            if source.offline_ok and _complete(source.clone):
                return Checkout(path=source.clone, commit=_head(git), offline=str(failure))
            raise
        commit = _resolve(git, source.ref)
        git.run("checkout", "--quiet", "--force", "--detach", commit)
        git.run("clean", "-ffdxq", "-e", "/.venv")  # what a run left, but not the venv
        return Checkout(path=source.clone, commit=commit)


def checked_out(clone: Path) -> str | None:
    """The commit the clone has checked out; None when there is no complete clone."""
    if not _complete(clone):
        return None
    return _Git(clone, "", DEFAULT_FETCH_TIMEOUT).quiet("rev-parse", "--verify", "HEAD^{commit}")


def git_source(dag: DagSpec, clone: Path) -> GitSource:
    """Where a git-backed DAG's code comes from, its clone being `clone`."""
    assert dag.git_url is not None
    assert dag.git_ref is not None
    return GitSource(
        url=dag.git_url,
        ref=dag.git_ref,
        clone=clone,
        fetch_timeout=dag.fetch_timeout,
        offline_ok=dag.offline_ok,
    )


def work_tree_commit(path: Path) -> str | None:
    """The commit checked out in the git work tree holding `path`, read from its files (no git
    process: this runs as every run starts); None outside a work tree or when it cannot be read."""
    try:
        for folder in (path, *path.parents):
            marker = folder / ".git"
            if marker.is_dir():
                return _head_of(marker, marker)
            if marker.is_file():  # a linked work tree or a submodule: "gitdir: <path>"
                gitdir = (folder / marker.read_text().removeprefix("gitdir:").strip()).resolve()
                common = gitdir / "commondir"
                refs = (
                    (gitdir / common.read_text().strip()).resolve() if common.is_file() else gitdir
                )
                return _head_of(gitdir, refs)
    except (OSError, UnicodeDecodeError):
        return None
    return None


def _head_of(gitdir: Path, refs: Path) -> str | None:
    head = (gitdir / "HEAD").read_text().strip()
    if not head.startswith("ref:"):
        return head if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", head) else None
    ref = head.removeprefix("ref:").strip()
    loose = refs / ref
    if loose.is_file():
        return loose.read_text().strip() or None
    packed = refs / "packed-refs"
    if packed.is_file():
        for line in packed.read_text().splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                return sha
    return None  # a branch with no commit yet


def remote_ref_problem(url: str, ref: str, timeout: float) -> str | None:
    """Why `ref` cannot be had from `url` (git ls-remote: the remote answers, and has the
    branch or tag, or a branch or tag at that commit); None when it can."""
    git = _Git(Path("/"), url, timeout)
    try:
        listing = git.run("ls-remote", "--heads", "--tags", "--", url)
    except RunError as exc:
        return str(exc)
    refs = [line.split("\t", 1) for line in listing.splitlines() if "\t" in line]
    names = {name.removesuffix("^{}") for _, name in refs}
    if f"refs/heads/{ref}" in names or f"refs/tags/{ref}" in names:
        return None
    if _SHA.fullmatch(ref) and any(sha.startswith(ref) for sha, _ in refs):
        return None
    if _SHA.fullmatch(ref):
        return f"no branch or tag of {masked(url)} is at commit {ref} (a fetch may still find it)"
    return f"{masked(url)} has no branch or tag '{ref}'"


_FETCH = ("fetch", "--quiet", "--prune", "--prune-tags", "--tags", "--force", "origin")


def _clone(source: GitSource) -> None:
    clone = source.clone
    shutil.rmtree(clone, ignore_errors=True)  # a clone cut short: made again
    making = clone.with_name(f".{clone.name}.cloning")
    shutil.rmtree(making, ignore_errors=True)
    making.mkdir()
    git = _Git(making, source.url, source.fetch_timeout)
    try:
        git.run("init", "--quiet")
        git.run("remote", "add", "origin", source.url)
        git.run(*_FETCH)
        making.rename(clone)
    finally:
        shutil.rmtree(making, ignore_errors=True)


def _complete(clone: Path) -> bool:
    return (clone / ".git").is_dir()


def _resolve(git: _Git, ref: str) -> str:
    """The commit `ref` names: a branch of the remote, a tag, or a commit it has."""
    candidates = [f"refs/remotes/origin/{ref}", f"refs/tags/{ref}"]
    if _SHA.fullmatch(ref):
        candidates.append(ref)
    for candidate in candidates:
        if found := git.quiet("rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}"):
            return found
    raise RunError(
        f"git ref '{ref}' is not a branch, a tag or a commit of {masked(git.url)} "
        "(git_ref in the DAG's pit.toml)"
    )


def _head(git: _Git) -> str:
    if found := git.quiet("rev-parse", "--verify", "--quiet", "HEAD^{commit}"):
        return found
    raise RunError(f"{git.where} has no commit checked out")


@attrs.frozen
class _Git:
    """git in one clone, for one remote, each command bounded by `timeout`."""

    where: Path
    url: str
    timeout: float

    def run(self, *args: str) -> str:
        """git's output, or RunError with what git said."""
        try:
            process = subprocess.Popen(
                ["git", "-C", str(self.where), *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**os.environ, **_GIT_ENV},
                start_new_session=True,  # so a timeout kills ssh or a remote helper too
            )
        except OSError as exc:
            raise RunError(f"cannot run git: {exc.strerror or exc} (install git)") from None
        try:
            out, err = process.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise RunError(
                f"git {args[0]} of {masked(self.url)} took over {self.timeout:g}s "
                "(fetch_timeout): stopped"
            ) from None
        if process.returncode != 0:
            said = err.decode(errors="replace").strip() or f"exit code {process.returncode}"
            raise RunError(f"git {args[0]} of {masked(self.url)} failed: {masked(said)}")
        return out.decode(errors="replace").strip()

    def quiet(self, *args: str) -> str | None:
        """git's output, or None when it fails."""
        try:
            return self.run(*args) or None
        except RunError:
            return None


@contextlib.contextmanager
def _locked(clone: Path) -> Iterator[None]:
    """Hold the clone's lock (waiting for another run or `pit sync` to finish with it)."""
    with open(clone.with_name(f"{clone.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
