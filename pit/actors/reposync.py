"""The repo sync: pit serve fetches its git-backed DAGs' clones every `sync_interval`.

So a run finds its clone fetched (its own fetch is then short), and the log says when a DAG's
code changed. Each fetch runs in a worker thread under the clone's lock (`store/repos.py`), so it
never meets a run's fetch; a failure is logged and tried again at the next interval.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import attrs
import trio

from pit.errors import RunError
from pit.spec.dag import DagSpec
from pit.store.repos import check_out, checked_out, git_source

log = logging.getLogger("pit.sync")


@attrs.frozen(kw_only=True)
class RepoSync:
    interval: float
    cache: Path
    """`repo_cache_dir`: each DAG's clone is `<cache>/<dag>`."""
    dags: Callable[[], Iterable[DagSpec]]
    """The DAGs served now (after the last reload)."""

    async def run(self) -> None:
        while True:
            await trio.sleep(self.interval)
            for dag in self.dags():
                if dag.git_backed:
                    # Abandoned at shutdown: a slow remote must not hold pit serve up.
                    await trio.to_thread.run_sync(self._sync, dag, abandon_on_cancel=True)

    def _sync(self, dag: DagSpec) -> None:
        clone = self.cache / dag.name
        before = checked_out(clone)
        try:
            after = check_out(git_source(dag, clone)).commit
        except RunError as exc:
            log.warning("%s: sync failed: %s", dag.name, exc)
            return
        if after != before:
            log.info(
                "%s: %s -> %s (%s)", dag.name, (before or "none")[:12], after[:12], dag.git_ref
            )
