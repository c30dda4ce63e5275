"""What Dask sees of pit: the function of every remote attempt, and the workers' preload.

- `run_attempt` is the task pit submits. Dask's scheduler unpickles every task, so it imports
  this module: it is kept to the standard library (the runner, `pit.remote.worker`, is imported
  on the worker only), and the attempt travels as JSON bytes.
- `dask worker tcp://host:8786 --preload pit.dask` (what `pit worker` runs) starts the worker's
  guard as the worker starts: from then on no process of a pit task outlives the worker, even
  one killed with -9. A worker without the preload gets its guard at its first pit task.
"""

from __future__ import annotations

from typing import Any


def dask_setup(worker: Any) -> None:
    from pit.remote.worker import setup_worker

    setup_worker()


def run_attempt(attempt: bytes) -> dict[str, Any] | None:
    """Run one attempt (a `RemoteAttempt`, encoded) on this worker: None once pit was told its
    end, else what became of it."""
    from pit.remote.worker import run_encoded

    return run_encoded(attempt)
