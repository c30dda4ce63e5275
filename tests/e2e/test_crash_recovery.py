"""Crash recovery through the run store: `pit serve` killed with SIGKILL at random points of a
busy workload, again and again. After each restart, no run is `running` without a live owner,
no task process is left, and at the end the store holds exactly what `pit store rebuild` makes
of the run folders.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from pit.messages.run import RunOwner
from pit.store.owner import owner_alive
from pit.store.runstore import RunStore, rebuild
from tests.conftest import Pit, Workspace, wait_until
from tests.e2e.test_serve import TOKEN, serve, webhook_dag

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

KILLS = 20
FINAL = ("success", "failed", "cancelled")


def run_ids_alive_in_proc(run_ids: set[str]) -> set[str]:
    """The runs of `run_ids` some process still carries in its environment (PIT_RUN_ID)."""
    wanted = {f"PIT_RUN_ID={run_id}".encode(): run_id for run_id in run_ids}
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        found |= {wanted[item] for item in environ if item in wanted}
    return found


class Firing:
    """Webhooks fired at pit serve from a thread, as fast as it answers, until stopped."""

    def __init__(self, port: int, dags: list[str]) -> None:
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._fire, args=(port, dags))

    def __enter__(self) -> Firing:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self._thread.join()

    def _fire(self, port: int, dags: list[str]) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=2.0) as client:
            while not self.stop.is_set():
                try:
                    client.post(f"/webhook/{random.choice(dags)}", headers=headers)
                except httpx.TransportError:
                    return  # pit serve is gone
                time.sleep(0.02)


def test_kill_9_of_pit_serve_at_random_points_leaves_every_run_settled(
    workspace: Workspace, pit: Pit
) -> None:
    workspace.config("max_active_runs = 2\n")
    webhook_dag(workspace, "quick", "exit 0\n", dag_keys='overlap = "allow"')
    webhook_dag(workspace, "busy", "sleep 0.3 &\nsleep 0.2\nwait\n", dag_keys='overlap = "queue"')
    webhook_dag(workspace, "slow", "sleep 5\n", dag_keys='overlap = "allow"')
    runs_dir = workspace.root / "runs"
    seed = random.randrange(1 << 30)
    chance = random.Random(seed)

    for kill in range(KILLS + 1):
        with serve(pit, workspace) as server:
            last = kill == KILLS
            with Firing(server.port, ["quick", "busy", "slow"]):
                time.sleep(0.3 if last else chance.uniform(0.05, 0.8))
            runs = {path.name for path in runs_dir.iterdir()} if runs_dir.is_dir() else set()
            unsettled = _unsettled(runs_dir)
            assert not unsettled, f"kill {kill} (seed {seed}): left unsettled: {unsettled}"
            if last:
                server.signal(signal.SIGTERM)
                assert server.exit_code(timeout=60) == 0, server.output()
            else:
                os.kill(server.process.pid, signal.SIGKILL)
                server.process.wait()
        wait_until(
            lambda runs=runs: not run_ids_alive_in_proc(runs),  # type: ignore[misc]
            timeout=10,
            what=f"the task processes of kill {kill} to end",
        )

    assert len(list(runs_dir.iterdir())) > KILLS, "the workload ran too few runs to say much"
    for folder in runs_dir.iterdir():
        record = workspace.manifest(folder)
        assert record["state"] in FINAL, (folder.name, record)
    with RunStore.open(workspace.root / ".pit" / "pit.db") as store:
        held = store.dump()
    rebuild(workspace.root / "rebuilt.db", runs_dir, workspace.root)
    with RunStore.open(workspace.root / "rebuilt.db") as rebuilt:
        assert held == rebuilt.dump(), f"seed {seed}"


def _unsettled(runs_dir: Path) -> list[str]:
    """Runs whose run.json says they are not over while their owner is dead (or that have no
    run.json at all): what a restart must never leave. Read right after pit serve listens,
    which it does only once it has settled what the last one left."""
    found = []
    if not runs_dir.is_dir():
        return found
    for folder in runs_dir.iterdir():
        try:
            record = Workspace.manifest(folder)
        except FileNotFoundError:
            continue  # accepted this very moment: its first record is on its way
        if record["state"] in FINAL or record["owner"] is None:
            continue
        if owner_alive(RunOwner(**record["owner"])) is False:
            found.append(folder.name)
    return found
