"""Folders as gzipped tarballs, for what travels between pit and a worker: the run's project
(named by its content), and the run's data folder when the worker cannot see it (staged).

Blocking, all of it: call through a worker thread.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path

_TAR_MTIME = 946684800
"""Every file's time in a project tarball (2000-01-01; zip, which uv may build, needs > 1980):
the tarball of the same code is the same bytes, so a worker keeps one copy of it."""
STAGE_LIMIT = 256 << 20
"""Bytes of data staged through pit each way, at most: more belongs on a shared filesystem."""

Stamps = dict[str, tuple[int, int]]
"""A folder's files (relative paths) -> (size, mtime_ns): what an attempt found there."""


class TooLarge(Exception):
    pass


class UnsafeTarball(Exception):
    """A tarball that would write outside its folder, or hold links, devices or too much."""


def pack_project(folder: Path) -> tuple[str, bytes]:
    """The project folder as a tarball that is the same bytes for the same files, and its
    sha256."""

    def normal(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime, info.uid, info.gid, info.uname, info.gname = _TAR_MTIME, 0, 0, "", ""
        return info

    data = _pack(folder, sorted(folder.rglob("*")), normal)
    return hashlib.sha256(data).hexdigest(), data


def pack_data(folder: Path, unless: Stamps | None = None) -> bytes:
    """The files of a data folder (only those not as in `unless`, when given) as a tarball;
    TooLarge past `STAGE_LIMIT`."""
    paths, total = [], 0
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        stat = path.stat()
        relative = str(path.relative_to(folder))
        if unless is not None and unless.get(relative) == (stat.st_size, stat.st_mtime_ns):
            continue
        total += stat.st_size
        if total > STAGE_LIMIT:
            raise TooLarge(
                f"the run's data is more than {STAGE_LIMIT >> 20} MiB: too much to stage through "
                "pit; put runs_dir on a filesystem the workers share, at the same path"
            )
        paths.append(path)
    return _pack(folder, paths, None)


def stamps(folder: Path) -> Stamps:
    found = {}
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            stat = path.stat()
            found[str(path.relative_to(folder))] = (stat.st_size, stat.st_mtime_ns)
    return found


def unpack(data: bytes, into: Path, limit: int | None = None) -> None:
    """Unpack a tarball into `into` (made if missing): regular files and folders only, each
    named by a plain relative path, `limit` bytes at most in all. UnsafeTarball for anything
    else (what a worker or its task sends is not trusted), tarfile.TarError for a damaged one."""
    into.mkdir(parents=True, exist_ok=True)
    total = 0
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not parts or Path(member.name).is_absolute() or ".." in parts:
                raise UnsafeTarball(f"a member named {member.name!r}")
            target = into.joinpath(*parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if not member.isfile():
                raise UnsafeTarball(f"{member.name!r} is not a file or a folder")
            total += member.size
            if limit is not None and total > limit:
                raise UnsafeTarball(f"more than {limit >> 20} MiB unpacked")
            source = tar.extractfile(member)
            assert source is not None  # a regular file's
            target.parent.mkdir(parents=True, exist_ok=True)
            with source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
            os.chmod(target, 0o755 if member.mode & 0o111 else 0o644)


def _pack(
    folder: Path,
    paths: Iterable[Path],
    normal: Callable[[tarfile.TarInfo], tarfile.TarInfo] | None,
) -> bytes:
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=1, mtime=0) as packed,
        tarfile.open(fileobj=packed, mode="w", dereference=True) as tar,
    ):
        for path in paths:  # a link is packed as what it points to: links are not unpacked
            if path.is_file() or path.is_dir():
                arcname = os.fspath(path.relative_to(folder))
                tar.add(path, arcname=arcname, recursive=False, filter=normal)
    return buffer.getvalue()
