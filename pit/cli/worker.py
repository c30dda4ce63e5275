"""`pit worker`: a Dask worker for pit's tasks, which is `dask worker --preload pit.dask`."""

from __future__ import annotations

import os
import sys


def worker_command(scheduler: str | None, scheduler_file: str | None, extra: list[str]) -> int:
    """Become the worker (exec): Dask's own options pass through, and signals reach it as they
    would reach `dask worker` itself."""
    if (scheduler is None) == (scheduler_file is None):
        print("pit worker: give the scheduler's address, or --scheduler-file", file=sys.stderr)
        return 2
    try:
        import distributed.cli.dask_worker  # noqa: F401  (is it installed?)
    except ImportError:
        print(
            "pit worker: Dask distributed is not installed: install pit with its dask extra "
            "(uv add 'pit[dask]', or pip install 'pit[dask]')",
            file=sys.stderr,
        )
        return 2
    target = [scheduler] if scheduler else ["--scheduler-file", str(scheduler_file)]
    argv = [sys.executable, "-m", "distributed.cli.dask_worker", *target, "--preload", "pit.dask"]
    os.execv(sys.executable, [*argv, *extra])
