"""A task that fills the disk: the run fails saying so, its siblings are stopped in order, and
run.json gets written all the same (from the space pit held for it); a run folder removed under
a run fails that run cleanly.

The small disk is a 1 MiB tmpfs on the runs folder, mounted in a private user and mount
namespace (`unshare -Urm`), so no privilege is needed; the namespace's mount ends with pit,
so the shell copies the runs out before it goes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Pit, Workspace

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


needs_unshare = pytest.mark.skipif(
    not _can_unshare(), reason="needs unshare -Urm and tmpfs mounts in a user namespace"
)


@needs_unshare
def test_a_full_disk_fails_the_run_saying_so_and_stops_siblings_in_order(
    workspace: Workspace, pit: Pit, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    workspace.shell_project(
        "full",
        {
            "filler": 'head -c 8M /dev/zero > "$PIT_DATA_DIR/fill"\nsleep 300\n',
            "sibling": f"trap 'echo term >> {outside}/sibling; exit 143' TERM\nsleep 300 &\nwait\n",
            "ticker": "sleep 1\n",
        },
    )
    runs = workspace.root / "runs"
    runs.mkdir()
    script = (
        'mount -t tmpfs -o size=1m tmpfs "$RUNS" || exit 99\n'
        '"$@"; code=$?\n'
        'cp -r "$RUNS"/. "$OUT"/runs\n'
        "exit $code\n"
    )
    done = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", script, "sh", *pit.argv(("run", "full"))],
        env=pit.env({"RUNS": str(runs), "OUT": str(outside)}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    (run,) = (outside / "runs").iterdir()
    record = json.loads((run / "run.json").read_text())
    assert record["state"] == "failed"
    assert record["error"].startswith("disk full: cannot write")
    tasks = {t["name"]: t for t in record["tasks"]}
    assert tasks["sibling"]["state"] == "failed"
    assert tasks["sibling"]["error"].startswith("disk full")
    assert (outside / "sibling").read_text() == "term\n", "the sibling got no SIGTERM first"
    assert "disk full" in done.stdout + done.stderr


def test_a_run_folder_removed_mid_run_fails_that_run_cleanly(
    workspace: Workspace, pit: Pit
) -> None:
    workspace.shell_project(
        "vanish",
        {"remover": 'rm -rf "$(dirname "$PIT_DATA_DIR")"\n', "later": "sleep 1\n"},
        depends_on={"later": []},
    )

    done = pit("run", "vanish", timeout=60)

    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "was removed while the run was going" in done.stdout + done.stderr
