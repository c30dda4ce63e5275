"""The guard of a process that executes runs (`pit run`, the executor of `pit serve`).

Started by `pit.actors.guard.RunGuard` in a session of its own, it reads lines from its stdin, a
pipe whose other end only the guarded process holds:

    run <run folder>    a run started
    end <run folder>    it ended
    dir <folder>        a private folder of the guarded process (its SDK sockets)
    mark <NAME=value>   processes with this in their environment die with the guarded one
    done                the guarded process is ending cleanly

End of input without `done` means the guarded process died (kill -9, a crash): the guard kills
every process of the runs still open (by PIT_RUN_ID, which every task process inherits) and
settles their run.json as failed, and removes the guarded process's private folders. Until
then it only waits on a read, and costs nothing.

Deliberately light: the standard library only on the way in (`python -I -S`), so it starts in
milliseconds; pit's own modules are imported only to settle, through PIT_GUARD_PATH.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time

_SWEEPS = 3
"""Passes over /proc: a process forked while the previous pass ran is caught by the next."""


def main() -> None:
    owner_pid = int(sys.argv[1])
    open_runs: dict[str, None] = {}
    folders: list[str] = []
    marks: set[bytes] = set()
    for line in sys.stdin.buffer:
        command, _, argument = line.decode("utf-8", "replace").rstrip("\n").partition(" ")
        if command == "run":
            open_runs[argument] = None
        elif command == "end":
            open_runs.pop(argument, None)
        elif command == "dir":
            folders.append(argument)
        elif command == "mark":
            marks.add(argument.encode())
        elif command == "done":
            return
    if open_runs or marks:
        _clean_up(owner_pid, list(open_runs), marks)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def _clean_up(owner_pid: int, run_dirs: list[str], marks: set[bytes]) -> None:
    markers = {f"PIT_RUN_ID={os.path.basename(d)}".encode() for d in run_dirs} | marks
    for sweep in range(_SWEEPS):
        _kill_marked(markers)
        if sweep + 1 < _SWEEPS:
            time.sleep(0.05)
    if not run_dirs:
        return
    sys.path[:0] = os.environ.get("PIT_GUARD_PATH", "").split(os.pathsep)
    from pathlib import Path

    from pit.clock import SystemClock
    from pit.store.owner import INTERRUPTED
    from pit.store.rundir import RunPaths, settle_dead_owner

    at = SystemClock().now()
    error = (
        f"{INTERRUPTED} by a crash: pit (pid {owner_pid}) died while the run was going; "
        "the guard stopped its tasks"
    )
    for run_dir in run_dirs:
        try:
            settle_dead_owner(RunPaths(root=Path(run_dir)), error, at)
        except OSError as exc:
            print(f"pit guard: cannot settle {run_dir}: {exc}", file=sys.stderr)


def _kill_marked(markers: set[bytes]) -> None:
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as environ:
                if markers.isdisjoint(environ.read().split(b"\0")):
                    continue
            os.kill(int(name), signal.SIGKILL)
        except OSError:  # gone meanwhile, or another user's
            continue


if __name__ == "__main__":
    main()
