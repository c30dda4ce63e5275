"""`pit store rebuild`: the run store made again from the run folders."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from pit.cli.context import CliContext
from pit.spec.load import Workspace
from pit.spec.problems import plural
from pit.store.runstore import RunStore, rebuild, store_path


def rebuild_command(cli: CliContext) -> int:
    """Index every run folder's run.json into a fresh run store: the exit code."""
    workspace = cli.workspace(projects=False)
    path = store_path(workspace.root, workspace.config.metadata_db)
    count = rebuild(path, workspace.runs_dir, workspace.root)
    print(f"{plural(count, 'run')} from {workspace.runs_dir} indexed in {path}")
    return 0


@contextlib.contextmanager
def indexed_store(workspace: Workspace) -> Iterator[RunStore]:
    """The workspace's run store, made first from the run folders when there is none yet (runs
    of a pit from before the store)."""
    path = store_path(workspace.root, workspace.config.metadata_db)
    if not path.exists():
        count = rebuild(path, workspace.runs_dir, workspace.root)
        print(f"pit: made the run store {path} ({plural(count, 'run')})", file=sys.stderr)
    with RunStore.open(path) as store:
        yield store
