"""A local folder, read the way an FTP watch reads its server (`FtpSession`): `[dag.dir_watch]`
is the FTP watch's machinery (its ledger, stable files, one run per file, archiving) on a folder
of this machine. Blocking calls run in worker threads."""

from __future__ import annotations

import datetime as dt
import fnmatch
import os
import shutil
from pathlib import Path

import trio

from pit.connectors.ftp import RemoteFile
from pit.connectors.target import ConnectorError


class LocalDir:
    """The `FtpSession` calls on local paths (a "remote" path is a local absolute path)."""

    async def list(self, directory: str, pattern: str = "*") -> list[RemoteFile]:
        """The regular files in `directory` whose name matches `pattern`, sorted by name; the
        modification time as an FTP server's MDTM gives it (UTC, microseconds)."""
        return await trio.to_thread.run_sync(_list, directory, pattern)

    async def download(self, remote_path: str, local_path: Path | str) -> int:
        """Copy the file to `local_path` (through `.partial`, renamed when whole)."""
        return await trio.to_thread.run_sync(_copy, remote_path, Path(local_path))

    async def move(self, src: str, dst: str) -> None:
        """Move `src` to `dst`, making `dst`'s folder when it is missing."""
        await trio.to_thread.run_sync(_move, src, dst)

    async def aclose(self) -> None:
        pass


async def local_dir() -> LocalDir:
    """An `FtpConnect` for a local folder: nothing to connect to."""
    return LocalDir()


def _list(directory: str, pattern: str) -> list[RemoteFile]:
    try:
        entries = list(os.scandir(directory))
    except OSError as exc:
        raise ConnectorError(f"cannot list {directory}: {exc.strerror or exc}") from None
    files = []
    for entry in entries:
        try:
            if not entry.is_file(follow_symlinks=False) or not fnmatch.fnmatchcase(
                entry.name, pattern
            ):
                continue
            info = entry.stat(follow_symlinks=False)
        except OSError:  # gone since the listing
            continue
        modified = dt.datetime.fromtimestamp(info.st_mtime, dt.UTC)
        files.append(
            RemoteFile(
                path=entry.path,
                name=entry.name,
                size=info.st_size,
                modified=modified.strftime("%Y%m%d%H%M%S.%f"),
            )
        )
    return sorted(files, key=lambda f: f.name)


def _copy(source: str, local: Path) -> int:
    partial = local.with_name(local.name + ".partial")
    try:
        shutil.copyfile(source, partial)
        os.replace(partial, local)
        return local.stat().st_size
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ConnectorError(f"cannot copy {source}: {exc.strerror or exc}") from None


def _move(src: str, dst: str) -> None:
    try:
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(src, dst)
    except OSError as exc:
        raise ConnectorError(f"cannot move {src} to {dst}: {exc.strerror or exc}") from None
