"""SFTP for trio: paramiko's blocking client in worker threads, with the calls an FTP watch and
the SDK's `ftp_*` functions make (`FtpSession`, and `upload`).

The server's host key is checked unless the secret says `host_key_check = "false"`: against
the `known_hosts` lines of the secret (what `ssh-keyscan -p PORT HOST` prints). A password, or a
private key (`private_key`, PEM or OpenSSH text) logs in. paramiko is imported when a session
is opened: it costs start-up that FTP and local DAGs need not pay.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import io
import posixpath
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import trio

from pit.connectors.ftp import FtpTarget, RemoteFile
from pit.connectors.target import ConnectorError

if TYPE_CHECKING:
    import paramiko

T = TypeVar("T")


class SftpClient:
    """One logged-in SFTP session; its calls are serialised and run in worker threads."""

    def __init__(self, target: FtpTarget, ssh: paramiko.SSHClient, sftp: paramiko.SFTPClient):
        self.target = target
        self._ssh = ssh
        self._sftp: paramiko.SFTPClient | None = sftp
        self._lock = trio.Lock()

    @classmethod
    async def connect(cls, target: FtpTarget, *, io_timeout: float = 30.0) -> SftpClient:
        ssh, sftp = await trio.to_thread.run_sync(_open, target, io_timeout)
        return cls(target, ssh, sftp)

    async def __aenter__(self) -> SftpClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def list(self, directory: str, pattern: str = "*") -> list[RemoteFile]:
        """The regular files in `directory` whose name matches `pattern`, sorted by name."""

        def job(sftp: paramiko.SFTPClient) -> list[RemoteFile]:
            files = []
            for entry in sftp.listdir_attr(directory):
                if entry.st_mode is None or not stat.S_ISREG(entry.st_mode):
                    continue
                if not fnmatch.fnmatchcase(entry.filename, pattern):
                    continue
                modified = None
                if entry.st_mtime is not None:
                    at = dt.datetime.fromtimestamp(entry.st_mtime, dt.UTC)
                    modified = at.strftime("%Y%m%d%H%M%S")
                files.append(
                    RemoteFile(
                        path=posixpath.join(directory, entry.filename),
                        name=entry.filename,
                        size=entry.st_size or 0,
                        modified=modified,
                    )
                )
            return sorted(files, key=lambda f: f.name)

        return await self._call(f"listing {directory}", job)

    async def download(self, remote_path: str, local_path: Path | str) -> int:
        """Copy a remote file to `local_path` (through `.partial`, renamed when whole)."""
        local = Path(local_path)
        partial = local.with_name(local.name + ".partial")

        def job(sftp: paramiko.SFTPClient) -> int:
            try:
                sftp.get(remote_path, str(partial))
                partial.replace(local)
            finally:
                partial.unlink(missing_ok=True)
            return local.stat().st_size

        return await self._call(f"downloading {remote_path}", job)

    async def upload(self, local_path: Path | str, remote_path: str) -> None:
        await self._call(
            f"uploading to {remote_path}", lambda sftp: sftp.put(str(local_path), remote_path)
        )

    async def move(self, src: str, dst: str) -> None:
        """Rename `src` to `dst`, making `dst`'s folder when it is missing."""

        def job(sftp: paramiko.SFTPClient) -> None:
            folder = posixpath.dirname(dst)
            if folder:
                _make_folders(sftp, folder)
            sftp.posix_rename(src, dst)

        await self._call(f"moving {src} to {dst}", job)

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            async with self._lock:
                sftp, self._sftp = self._sftp, None
                if sftp is not None:
                    await trio.to_thread.run_sync(_close, sftp, self._ssh)

    async def _call(self, what: str, job: Callable[[paramiko.SFTPClient], T]) -> T:
        async with self._lock:
            sftp = self._sftp
            if sftp is None:
                raise ConnectorError(f"{what}: the SFTP session is closed")
            try:
                return await trio.to_thread.run_sync(job, sftp)
            except (OSError, EOFError) as exc:
                raise ConnectorError(f"{what} on {_where(self.target)}: {exc}") from None


def _open(target: FtpTarget, io_timeout: float) -> tuple[paramiko.SSHClient, paramiko.SFTPClient]:
    import paramiko

    ssh = paramiko.SSHClient()
    if target.host_key_check:
        if not target.known_hosts:
            raise ConnectorError(
                f"the SFTP secret for {_where(target)} has no known_hosts field: add the "
                'server\'s key (what `ssh-keyscan` prints) or set host_key_check = "false"'
            )
        for line in target.known_hosts.splitlines():
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
            if entry is not None and entry.key is not None:
                for name in entry.hostnames:
                    ssh.get_host_keys().add(name, entry.key.get_name(), entry.key)
        ssh.set_missing_host_key_policy(paramiko.RejectPolicy())
    else:
        ssh.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    key = None
    if target.private_key:
        key = _private_key(target.private_key)
    try:
        ssh.connect(
            target.host,
            port=target.port,
            username=target.user,
            password=target.password or None,
            pkey=key,
            timeout=io_timeout,
            banner_timeout=io_timeout,
            auth_timeout=io_timeout,
            look_for_keys=False,
            allow_agent=False,
        )
        sftp = ssh.open_sftp()
        sftp.get_channel().settimeout(io_timeout)  # type: ignore[union-attr]
    except paramiko.BadHostKeyException:
        ssh.close()
        raise ConnectorError(
            f"{_where(target)} showed a host key other than known_hosts holds: not connecting"
        ) from None
    except paramiko.SSHException as exc:
        ssh.close()
        reason = str(exc)
        if "not found in known_hosts" in reason:
            reason = "its host key is not in the secret's known_hosts"
        raise ConnectorError(f"cannot connect to {_where(target)}: {reason}") from None
    except OSError as exc:
        ssh.close()
        raise ConnectorError(f"cannot connect to {_where(target)}: {exc}") from None
    return ssh, sftp


def _private_key(text: str) -> paramiko.PKey:
    import paramiko

    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text))
        except paramiko.SSHException:
            continue
    raise ConnectorError("the SFTP secret's private_key is not a key paramiko reads")


def _make_folders(sftp: paramiko.SFTPClient, folder: str) -> None:
    try:
        sftp.stat(folder)
    except OSError:
        parent = posixpath.dirname(folder.rstrip("/"))
        if parent and parent != folder:
            _make_folders(sftp, parent)
        sftp.mkdir(folder)


def _close(sftp: paramiko.SFTPClient, ssh: paramiko.SSHClient) -> None:
    try:
        sftp.close()
    finally:
        ssh.close()


def _where(target: FtpTarget) -> str:
    return f"SFTP server {target.host}:{target.port}"
