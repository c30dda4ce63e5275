"""`pit new <dir>`: a whole workspace, runnable as created.

pit_config.toml, one example project, a secrets file that git ignores (with a note on where it
belongs in production), a .gitignore keeping runs and secrets out of git, and a README stub.
"""

from __future__ import annotations

from pathlib import Path

from pit.cli.init import write_project
from pit.errors import WorkspaceError
from pit.spec.load import PROJECTS_DIR

EXAMPLE = "hello"

FILES = {
    "pit_config.toml": """\
# The workspace's settings: every key is optional (see pit's README).
secrets_dir = "secrets.toml"   # in production, a file outside the workspace (see secrets.toml)
# max_active_tasks = 4         # tasks running at once, across each run
# keep_runs = 100              # a DAG's runs kept in runs/ (older ones are removed)
# api_token = "api"            # the secret holding pit serve's API and dashboard token
""",
    "secrets.toml": """\
# Secrets for the tasks of this workspace. Never commit this file: .gitignore lists it.
# In production keep it outside the workspace, readable by pit's user only (for example
# /etc/pit/secrets.toml, mode 0600), and point secrets_dir in pit_config.toml or
# `pit --secrets FILE` at it.
#
# [global]                     # secrets every DAG may read
# warehouse = "postgresql://user:password@localhost:5432/analytics"
#
# [hello]                      # secrets only the DAG "hello" may read
# api_key = "..."
""",
    ".gitignore": """\
# What pit writes as it runs, and the secrets: not for git.
runs/
.pit/
repo_cache/
secrets.toml
.venv/
__pycache__/
""",
    "README.md": """\
# {name}

A pit workspace: each folder in `projects/` is a DAG (its `pit.toml` and its task scripts).

    pit validate          # check every project
    pit run {example}         # run the example DAG once, in the foreground
    pit logs {example}        # its latest run's logs
    pit serve             # run the DAGs on their schedules, webhooks and FTP watches

Add a project with `pit init <name> --type python|sql|shell|dbt`.
""",
}


def new_command(*, directory: Path) -> int:
    """`pit new`: the workspace in `directory` (made if need be, refused if not empty)."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise WorkspaceError(f"{directory} already exists and is not an empty folder")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for relative, text in FILES.items():
            path = directory / relative
            path.write_text(
                text.format(name=directory.resolve().name, example=EXAMPLE), encoding="utf-8"
            )
        (directory / "secrets.toml").chmod(0o600)
        write_project(directory / PROJECTS_DIR / EXAMPLE, EXAMPLE, "shell")
    except OSError as exc:
        raise WorkspaceError(f"cannot create the workspace {directory}: {exc}") from exc
    print(f"created the pit workspace {directory}")
    print(f"  run the example: pit -C {directory} run {EXAMPLE}")
    print(f"  add a project:   pit -C {directory} init <name> --type python|sql|shell|dbt")
    return 0
