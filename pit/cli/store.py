"""`pit store rebuild`: the run store made again from the run folders."""

from __future__ import annotations

from pit.cli.context import CliContext
from pit.spec.problems import plural
from pit.store.runstore import rebuild, store_path


def rebuild_command(cli: CliContext) -> int:
    """Index every run folder's run.json into a fresh run store: the exit code."""
    workspace = cli.workspace(projects=False)
    path = store_path(workspace.root, workspace.config.metadata_db)
    count = rebuild(path, workspace.runs_dir)
    print(f"{plural(count, 'run')} from {workspace.runs_dir} indexed in {path}")
    return 0
