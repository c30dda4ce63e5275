"""`pit sync [dag...]`: fetch the clones of git-backed DAGs ahead of their runs.

Each DAG's clone (`repo_cache/<dag>`) is fetched and its ref checked out, as a run would do, and
a clone holding a Python project (a pyproject.toml) gets its venv made (`uv sync`), so the first
scheduled run pays for neither. Says, per DAG, which commit it had and which it has now.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pit.cli.context import CliContext
from pit.errors import RunError, WorkspaceError
from pit.runners.dbt import dbt_command
from pit.spec.dag import DagSpec
from pit.store.repos import check_out, checked_out, git_source

PREPARE_TIMEOUT = 600.0
"""Seconds making a clone's venv (`uv sync`), or installing its dbt, may take."""


def sync_command(cli: CliContext, *, dags: list[str], as_json: bool) -> int:
    """The exit code: 0 when every DAG synced, 1 when one failed, 2 for a wrong name."""
    workspace = cli.workspace()
    git_backed = {
        p.dag.name: p.dag for p in workspace.projects if p.dag is not None and p.dag.git_backed
    }
    for name in dags:
        if name not in git_backed:
            known = ", ".join(sorted(git_backed)) or "none"
            raise WorkspaceError(
                f"'{name}' is not a git-backed DAG here (git-backed DAGs: {known})"
            )
    chosen = [git_backed[name] for name in (dags or sorted(git_backed))]
    if not chosen:
        print("pit sync: no git-backed DAG (git_url in [dag]) to sync", file=sys.stderr)
        return 0
    config = workspace.config
    results = []
    for dag in chosen:
        clone = workspace.root / config.repo_cache_dir / dag.name
        if not as_json:
            print(f"{dag.name}: fetching {dag.git_ref} ...", flush=True)
        results.append(_sync(dag, clone))
        if not as_json:
            print(f"{dag.name}: {_said(results[-1])}", flush=True)
    if as_json:
        print(json.dumps(results, indent=2))
    return 1 if any(result["error"] for result in results) else 0


def _sync(dag: DagSpec, clone: Path) -> dict[str, str | bool | None]:
    before = checked_out(clone)
    result: dict[str, str | bool | None] = {
        "dag": dag.name,
        "before": before,
        "after": None,
        "changed": False,
        "venv": None,
        "dbt": None,
        "error": None,
    }
    try:
        after = check_out(git_source(dag, clone)).commit
    except RunError as exc:
        result["error"] = str(exc)
        return result
    result.update(after=after, changed=after != before)
    if (clone / "pyproject.toml").is_file():
        result["venv"], result["error"] = _prepared(
            ["uv", "sync", "--quiet", "--project", str(clone)]
        )
        if result["venv"] is not None:
            result["venv"] = str(clone / ".venv")
    if dag.dbt is not None and result["error"] is None:  # dbt installed in uv's cache
        done, result["error"] = _prepared([*dbt_command(dag.dbt), "--help"])
        result["dbt"] = done is not None
    return result


def _prepared(argv: list[str]) -> tuple[str | None, str | None]:
    """Run what makes an environment ready (the clone's venv, dbt in uv's cache): ("ok", None),
    or (None, why not)."""
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=PREPARE_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{' '.join(argv[:2])}: {exc}"
    if done.returncode != 0:
        return None, f"{' '.join(argv)} failed: {done.stderr.strip()[-2000:]}"
    return "ok", None


def _said(result: dict[str, str | bool | None]) -> str:
    if result["after"] is None:
        return f"failed: {result['error']}"
    after = str(result["after"])[:12]
    if result["before"] is None:
        line = f"cloned at {after}"
    elif result["changed"]:
        line = f"{str(result['before'])[:12]} -> {after}"
    else:
        line = f"up to date at {after}"
    if result["venv"]:
        line += f"; venv ready ({result['venv']})"
    if result["dbt"]:
        line += "; dbt installed"
    elif result["error"]:
        line += f"; {result['error']}"
    return line
