"""Real Dask clusters for the scale-out tests, each in processes of its own (so Dask's threads,
warnings and loops stay out of the test process).

- `LocalDask`: a `distributed.LocalCluster` of 2 worker processes, started by a small script
  that prints the scheduler's address and closes the cluster when its stdin closes.
- `SeparateDask`: `dask scheduler` and `pit worker` as two separate commands, as a user runs them.

The workers run with UV_OFFLINE=1: tests touch no network, and uv installs a project's pinned
packages from the cache that pit's own sync filled.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.pgcluster import free_port

STARTUP_GUARD = 60.0

_LOCAL_CLUSTER = """
import sys
from distributed import LocalCluster

if __name__ == "__main__":
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=2, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=40,
    )
    print(cluster.scheduler_address, flush=True)
    sys.stdin.read()  # until the tests close it
    cluster.close()
"""


def worker_env() -> dict[str, str]:
    return {**os.environ, "UV_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}


class LocalDask:
    def __init__(self, folder: Path) -> None:
        script = folder / "local_cluster.py"
        script.write_text(_LOCAL_CLUSTER)
        self.log = folder / "local_cluster.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(script)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=worker_env(),
                cwd=folder,
                start_new_session=True,
            )
        assert self.process.stdout is not None
        self.address = self.process.stdout.readline().decode().strip()
        if not self.address.startswith("tcp://"):
            self.close()
            raise RuntimeError(f"the LocalCluster did not start:\n{self.log.read_text()}")

    def close(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait()


class SeparateDask:
    """`dask scheduler` and `pit worker --nworkers 1`, each a process of its own."""

    def __init__(self, folder: Path, pit: Path) -> None:
        port = free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        self.logs = folder / "scheduler.log", folder / "worker.log"
        env = worker_env()
        with self.logs[0].open("wb") as log:
            self.scheduler = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--no-dashboard",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        with self.logs[1].open("wb") as log:
            self.worker = subprocess.Popen(
                [
                    str(pit),
                    "worker",
                    self.address,
                    "--nworkers",
                    "1",
                    "--nthreads",
                    "2",
                    "--no-dashboard",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + STARTUP_GUARD
        while b"Starting established connection" not in self.logs[1].read_bytes():
            if time.monotonic() > deadline or self.worker.poll() is not None:
                text = "\n".join(p.read_text() for p in self.logs)
                self.close()
                raise RuntimeError(f"the worker did not join its scheduler:\n{text}")
            time.sleep(0.1)

    def close(self) -> None:
        for process in (self.worker, self.scheduler):
            if process.poll() is None:
                os.killpg(process.pid, 15)
        for process in (self.worker, self.scheduler):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()
