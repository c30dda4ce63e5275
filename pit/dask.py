"""Dask's preload for pit's workers: `dask worker tcp://host:8786 --preload pit.dask`, which is
what `pit worker` runs. It starts the worker's guard as the worker starts (see
`pit.remote.worker`): from then on, no process of a pit task outlives the worker, even one
killed with -9. A worker without the preload gets its guard at its first pit task.
"""

from __future__ import annotations

from typing import Any


def dask_setup(worker: Any) -> None:
    from pit.remote.worker import setup_worker

    setup_worker()
