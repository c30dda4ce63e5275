"""A Dask worker's files of pit's runs: the project tarballs it fetched (by content), the runs'
projects unpacked from them (one folder per run and code, shared by the run's attempts on the
worker, pruned once unused), and the staged data folders of attempts. Blocking: called from the
attempts' threads (`pit.remote.worker`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from pit.remote.tarballs import unpack

_TARBALLS_KEPT = 16
"""Project tarballs a worker keeps: the code of the runs it served last."""
_PROJECTS_KEPT = 16
"""Unpacked projects of runs a worker keeps unused: the runs it served last."""


def unpack_staged(data: bytes, attempts: Path) -> Path:
    """The run's data folder as pit sent it, in a new folder under `attempts`."""
    attempts.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(dir=attempts))
    try:
        unpack(data, staged)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return staged


def keep_tarball(path: Path, data: bytes) -> None:
    """Write a tarball into the cache whole (a rename), dropping the oldest beyond
    `_TARBALLS_KEPT`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    partial.write_bytes(data)
    partial.replace(path)
    kept = sorted(path.parent.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in kept[_TARBALLS_KEPT:]:
        old.unlink(missing_ok=True)


class Projects:
    """The runs' projects unpacked in this worker process: a folder per run, unpacked by its
    first attempt here (atomically: into a side folder, then renamed), used by its attempts,
    and removed once unused when newer ones pass `_PROJECTS_KEPT`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[Path, int] = {}
        self._unpacking: dict[Path, threading.Lock] = {}

    @contextlib.contextmanager
    def using(self, project: Path) -> Iterator[None]:
        with self._lock:
            users = self._users[project] = self._users.get(project, 0) + 1
        if users == 1:
            with contextlib.suppress(OSError):  # used now: the newest, for `_prune`
                os.utime(project.parent)
        try:
            yield
        finally:
            with self._lock:
                self._users[project] -= 1
                if not self._users[project]:
                    del self._users[project]

    def unpack(self, project: Path, tarball: Callable[[], bytes]) -> None:
        """Make sure `project` holds the run's project."""
        if project.is_dir():
            return
        with self._lock:
            lock = self._unpacking.setdefault(project, threading.Lock())
        try:
            with lock:
                if project.is_dir():  # another attempt of the run did it meanwhile
                    return
                self._prune(project.parent.parent)
                side = project.with_name(f".{project.name}.{threading.get_ident()}")
                try:
                    unpack(tarball(), side)
                    side.rename(project)
                finally:
                    shutil.rmtree(side, ignore_errors=True)
        finally:
            with self._lock:
                self._unpacking.pop(project, None)

    def _prune(self, runs: Path) -> None:
        """Remove the projects of runs no attempt here uses, but the newest `_PROJECTS_KEPT`."""
        with contextlib.suppress(OSError):
            folders = sorted(runs.iterdir(), key=lambda f: f.stat().st_mtime, reverse=True)
            with self._lock:
                in_use = {project.parent for project in self._users}
            for folder in [f for f in folders if f not in in_use][_PROJECTS_KEPT:]:
                shutil.rmtree(folder, ignore_errors=True)


projects = Projects()
