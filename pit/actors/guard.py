"""The parent's side of the run guard (`pit/cli/guard.py`): a small process that outlives pit
only to clean up after it.

If `pit run` or the executor of `pit serve` dies without warning (kill -9, a crash), nothing
inside it can stop its tasks or finish its run.json. Its guard, started in a session of its own,
learns of the death when the pipe only pit holds reaches its end, kills the processes of the
runs still open and settles their run.json as failed, within a second.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs

from pit.actors.orphans import forget_child, register_child
from pit.store.rundir import RunPaths

_SCRIPT = Path(__file__).resolve().parents[1] / "cli" / "guard.py"


@attrs.define
class RunGuard:
    """Tells the guard which runs are open. Writes are a line to a pipe the guard is reading:
    they never block in practice (the pipe holds 64 KiB)."""

    pid: int
    pipe: int
    """The write end; the guard reads the other. Not inherited by tasks (Python's default)."""

    @classmethod
    @contextlib.contextmanager
    def start(cls) -> Iterator[RunGuard]:
        """Start the guard of this process; told `done` at the end.

        Not waited for: a short `pit run` would otherwise wait for the guard's own start-up
        to finish. It exits at `done` by itself; reaped here if it already has, else by
        whoever adopts it once this process ends."""
        read_end, write_end = os.pipe()
        try:
            pid = os.posix_spawn(
                sys.executable,
                [sys.executable, "-I", "-S", str(_SCRIPT), str(os.getpid())],
                {**os.environ, "PIT_GUARD_PATH": os.pathsep.join(sys.path)},
                file_actions=[(os.POSIX_SPAWN_DUP2, read_end, 0)],
                setsid=True,  # a signal to pit's process group must spare it
            )
        finally:
            os.close(read_end)
        register_child(pid)
        guard = cls(pid=pid, pipe=write_end)
        try:
            yield guard
        finally:
            guard._say("done")
            os.close(write_end)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            forget_child(pid)

    def opened(self, paths: RunPaths) -> None:
        """A run starts: its tasks must not outlive this process."""
        self._say(f"run {paths.root}")

    def closed(self, paths: RunPaths) -> None:
        self._say(f"end {paths.root}")

    def holds(self, folder: Path) -> None:
        """A private folder of this process (its SDK sockets): removed if this process dies."""
        self._say(f"dir {folder}")

    def marks(self, marker: str) -> None:
        """Every process whose environment holds `marker` (NAME=value) is killed if this
        process dies: the tasks a Dask worker runs for pit carry its mark."""
        self._say(f"mark {marker}")

    def _say(self, line: str) -> None:
        with contextlib.suppress(OSError):  # a guard that died cannot guard; the run goes on
            os.write(self.pipe, f"{line}\n".encode())
