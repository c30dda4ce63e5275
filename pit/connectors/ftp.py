"""FTP and FTPS servers for FTP watch triggers and the SDK: stdlib `ftplib` behind a small async
interface.

One `FtpClient` holds one connection; its calls are serialised by a lock and each runs in a worker
thread (`trio.to_thread`). Every socket has a timeout (`io_timeout`), so a server that stops
answering fails the call after that long instead of hanging it. Cancelling a running call shuts
the connection's sockets down, which ends the blocked `ftplib` call at once; the client waits for
the worker thread to return (no thread is left using the connection) and is closed from then on.
"""

from __future__ import annotations

import contextlib
import fnmatch
import ftplib
import posixpath
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, cast

import attrs
import trio

from pit.connectors.target import ConnectorError

if TYPE_CHECKING:
    from pit.connectors.sftp import SftpClient

T = TypeVar("T")
DEFAULT_PORT = 21
SFTP_PORT = 22
_INTERRUPT_WAIT = 10.0
"""Seconds to wait for a worker thread to return after its sockets were shut down."""
_QUIT_TIMEOUT = 2.0
"""Seconds `aclose` gives the server to answer QUIT before the connection is simply closed."""
_NOT_IMPLEMENTED = ("500", "502", "504")
"""Replies of a server that does not know a command (MLSD, MDTM) at all."""


@attrs.frozen(kw_only=True)
class FtpTarget:
    """Where an FTP server is and how to log in to it."""

    host: str
    port: int = DEFAULT_PORT
    user: str
    password: str = attrs.field(repr=False)
    tls: bool = False
    """Explicit FTPS: AUTH TLS on the control connection, then PROT P (encrypted data too)."""
    cafile: str | None = None
    """PEM file of the CA(s) to trust for the server's certificate, for servers with a private CA
    or a self-signed certificate; None trusts the system's store. The host name is always
    checked against the certificate."""
    sftp: bool = False
    """SFTP (over SSH, `pit.connectors.sftp`) instead of FTP."""
    private_key: str | None = attrs.field(default=None, repr=False)
    """SFTP: the key that logs in, when there is no password."""
    known_hosts: str | None = None
    """SFTP: the server's host keys, as `ssh-keyscan` prints them."""
    host_key_check: bool = True

    def describe(self) -> str:
        """For messages: where the server is, without credentials."""
        kind = "SFTP" if self.sftp else "FTPS" if self.tls else "FTP"
        return f"{kind} server {self.host}:{self.port}"


def ftp_target(
    secret: str | Mapping[str, str],
    *,
    host: str | None = None,
    user: str | None = None,
    port: int | None = None,
    tls: bool | None = None,
    protocol: str | None = None,
) -> FtpTarget:
    """The server a `[dag.ftp_watch]` and its secret describe. The secret is a structured one
    (fields host, user and password, and optional port, tls ("true"/"false") and cafile), or,
    when `host` and `user` come from pit.toml (the original Pit's form), a plain secret holding
    the password. What pit.toml gives (host, user, port, tls) wins over the secret's fields."""
    if isinstance(secret, str):
        if not host or not user:
            raise ConnectorError(
                "the FTP secret is a plain value; make it a table with host, user and password "
                "fields (and optionally port, tls, cafile), or set host and user in "
                "[dag.ftp_watch]"
            )
        secret = {"password": secret}
    fields = {**secret, **{k: v for k, v in (("host", host), ("user", user)) if v}}
    sftp = (protocol or fields.get("protocol") or "ftp").strip().lower() == "sftp"
    missing = [name for name in ("host", "user") if not fields.get(name)]
    missing += [] if "password" in fields or (sftp and "private_key" in fields) else ["password"]
    if missing:
        fields_named = ", ".join(sorted(secret)) or "none"
        raise ConnectorError(
            f"the FTP secret has no {' or '.join(missing)} field (it has: {fields_named}); "
            "add it to the secret's table in the secrets file"
        )
    default_port = SFTP_PORT if sftp else DEFAULT_PORT
    return FtpTarget(
        host=fields["host"],
        port=port if port is not None else _port_field(fields.get("port"), default_port),
        user=fields["user"],
        password=fields.get("password", ""),
        tls=tls if tls is not None else _tls_field(fields.get("tls")),
        cafile=fields.get("cafile") or None,
        sftp=sftp,
        private_key=fields.get("private_key") or None,
        known_hosts=fields.get("known_hosts") or None,
        host_key_check=fields.get("host_key_check", "true").strip().lower() != "false",
    )


async def open_session(target: FtpTarget) -> FtpClient | SftpClient:
    """A logged-in session with the server: FTP(S), or SFTP."""
    if target.sftp:
        from pit.connectors.sftp import SftpClient  # paramiko: only for SFTP servers

        return await SftpClient.connect(target)
    return await FtpClient.connect(target)


def _port_field(text: str | None, default: int = 0) -> int:
    if not text:
        return default or DEFAULT_PORT
    if not text.strip().isdigit() or not 0 < int(text) < 65536:
        raise ConnectorError(f"the FTP secret's port is {text!r}; write a port number like 21")
    return int(text)


def _tls_field(text: str | None) -> bool:
    value = (text or "false").strip().lower()
    if value not in ("true", "false"):
        raise ConnectorError(f'the FTP secret\'s tls is {text!r}; write "true" or "false"')
    return value == "true"


@attrs.frozen(kw_only=True)
class RemoteFile:
    """A file in a directory listing."""

    path: str
    """Full remote path: the listed directory joined with the name."""
    name: str
    size: int
    """Bytes, as the server reports them now; a file still being written grows between lists."""
    modified: str | None
    """Last modification as the server gives it (MLSD `modify` fact or MDTM reply):
    `YYYYMMDDHHMMSS` with optional fractional seconds, in UTC by RFC 3659; None when the server
    does not say. Compare it as text only with values from the same server."""


class FtpSession(Protocol):
    """The calls an FTP watch makes on one connection: `FtpClient` has them; tests give an
    in-memory fake."""

    async def download(self, remote_path: str, local_path: Path | str) -> int: ...

    async def move(self, src: str, dst: str) -> None: ...

    async def aclose(self) -> None: ...

    async def list(self, directory: str, pattern: str = "*") -> list[RemoteFile]: ...


FtpConnect = Callable[[], Awaitable[FtpSession]]
"""Connects and logs in to one server: `functools.partial(FtpClient.connect, target)`."""


class FtpClient:
    """One connection to an FTP server, used from trio. Calls are serialised; each runs in a
    worker thread. Every failure is a ConnectorError naming the operation and the server. A
    refusal (a 4xx/5xx reply) leaves the connection usable; after a network failure, or a call
    cancelled while it ran, the connection is closed and later calls fail: connect again."""

    def __init__(self, target: FtpTarget, connection: _Ftp) -> None:
        self.target = target
        self._connection: _Ftp | None = connection
        self._io_timeout = connection.timeout
        self._lock = trio.Lock()

    @classmethod
    async def connect(cls, target: FtpTarget, *, io_timeout: float = 30.0) -> FtpClient:
        """Connect and log in (with TLS first when `target.tls`). `io_timeout` bounds each wait
        for the server (connecting, each reply, each block of a transfer), not a whole call: use
        `trio.fail_after` for that."""
        connection = await trio.to_thread.run_sync(_new_connection, target, io_timeout)
        client = cls(target, connection)
        try:
            await client._call(f"connecting to {target.describe()}", _log_in(target))
        except BaseException:
            await client.aclose()
            raise
        return client

    async def __aenter__(self) -> FtpClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def list(self, directory: str, pattern: str = "*") -> list[RemoteFile]:
        """The files (not directories or links) in `directory` whose name matches the glob
        `pattern` (case-sensitive), sorted by name."""

        def job(ftp: _Ftp) -> list[RemoteFile]:
            files = _list_mlsd(ftp, directory) if ftp.knows_mlsd else None
            if files is None:
                files = _list_nlst(ftp, directory, pattern)
            found = [file for file in files if fnmatch.fnmatchcase(file.name, pattern)]
            return sorted(found, key=lambda file: file.name)

        return await self._call(f"listing {directory!r} on {self.target.describe()}", job)

    async def download(self, remote_path: str, local_path: Path | str) -> int:
        """Copy a remote file to `local_path`; the number of bytes. The data goes to
        `<local_path>.partial` first, renamed when complete: a failed or cancelled download
        leaves no file (and an existing `local_path` untouched)."""
        local = Path(local_path)
        partial = local.with_name(local.name + ".partial")

        def job(ftp: _Ftp) -> int:
            try:
                file = partial.open("wb")
            except OSError as exc:
                raise ConnectorError(f"cannot write {partial}: {exc.strerror}") from exc
            try:
                with file:
                    ftp.retrbinary(f"RETR {remote_path}", file.write)
                    size = file.tell()
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
            try:
                partial.replace(local)
            except OSError as exc:
                partial.unlink(missing_ok=True)
                raise ConnectorError(f"cannot write {local}: {exc.strerror}") from exc
            return size

        return await self._call(f"downloading {remote_path!r} from {self.target.describe()}", job)

    async def upload(self, local_path: Path | str, remote_path: str) -> None:
        """Store a local file as `remote_path` (replacing it). A failed upload may leave part of
        the file on the server."""
        local = Path(local_path)

        def job(ftp: _Ftp) -> None:
            try:
                file = local.open("rb")
            except OSError as exc:
                raise ConnectorError(f"cannot read {local}: {exc.strerror}") from exc
            with file:
                ftp.storbinary(f"STOR {remote_path}", file)

        action = f"uploading {str(local)!r} to {remote_path!r} on {self.target.describe()}"
        await self._call(action, job)

    async def move(self, src: str, dst: str) -> None:
        """Rename `src` to `dst` on the server, creating `dst`'s directory when it is missing."""

        def job(ftp: _Ftp) -> None:
            ftp.sendcmd(f"RNFR {src}")  # fails (nothing created) when src does not exist
            try:
                ftp.voidcmd(f"RNTO {dst}")
            except ftplib.error_perm:
                _make_directories(ftp, posixpath.dirname(dst))
                ftp.rename(src, dst)

        await self._call(f"moving {src!r} to {dst!r} on {self.target.describe()}", job)

    async def aclose(self) -> None:
        """Say QUIT (briefly) and close. Safe to call twice."""
        with trio.CancelScope(shield=True):
            async with self._lock:
                connection, self._connection = self._connection, None
                if connection is not None:
                    await trio.to_thread.run_sync(_quit, connection)

    # --- plumbing ------------------------------------------------------------------------------

    async def _call(self, action: str, job: Callable[[_Ftp], T]) -> T:
        """Run `job` on the connection in a worker thread; turn its failures into ConnectorError
        (starting with `action`). Cancelled while it runs, the job is interrupted, waited for, and
        the client closed."""
        async with self._lock:
            connection = self._connection
            if connection is None:
                raise ConnectorError(
                    f"{action} failed: the connection was closed (by aclose, an earlier error or "
                    "a cancelled call); connect again"
                )

            def job_then_tidy() -> T:
                try:
                    return job(connection)
                finally:
                    if self._connection is None:  # interrupted and no longer waited for
                        connection.close()

            call = _ThreadCall(job_then_tidy)
            try:
                # Abandoning only frees this task: below, the thread is interrupted and waited for.
                return await trio.to_thread.run_sync(call.run, abandon_on_cancel=True)
            except trio.Cancelled:
                if call.call_off():
                    with trio.CancelScope(shield=True):
                        self._connection = None
                        connection.interrupt()
                        if await trio.to_thread.run_sync(call.returned.wait, _INTERRUPT_WAIT):
                            connection.close()
                raise
            except ConnectorError as exc:
                raise ConnectorError(self._scrub(str(exc))) from exc
            except (ftplib.error_perm, ftplib.error_temp) as exc:
                # A refusal: the conversation is still in step, the connection stays usable.
                raise ConnectorError(self._failure(action, exc)) from exc
            except ftplib.all_errors as exc:
                self._connection = None
                connection.close()
                raise ConnectorError(self._failure(action, exc)) from exc

    def _failure(self, action: str, exc: BaseException) -> str:
        return self._scrub(f"{action} failed: {_reason(exc, self._io_timeout)}")

    def _scrub(self, message: str) -> str:
        """Servers do not echo passwords, but a message must never show one."""
        password = self.target.password
        return message.replace(password, "***") if password else message


class _ThreadCall(Generic[T]):
    """A job for a worker thread that the trio side can call off: before it starts (then it never
    touches the connection) or while it runs (then it must be interrupted and waited for)."""

    def __init__(self, job: Callable[[], T]) -> None:
        self._job = job
        self._lock = threading.Lock()
        self._started = False
        self._called_off = False
        self.returned = threading.Event()
        """Set when a started job has returned or raised."""

    def run(self) -> T:
        with self._lock:
            if self._called_off:
                raise RuntimeError("called off before it started")  # nobody waits for this
            self._started = True
        try:
            return self._job()
        finally:
            self.returned.set()

    def call_off(self) -> bool:
        """Whether the job had already started."""
        with self._lock:
            self._called_off = True
            return self._started


def _reason(exc: BaseException, timeout: float | None) -> str:
    match exc:
        case ftplib.Error():
            return f"the server replied {str(exc).strip()!r}"
        case ssl.SSLCertVerificationError():
            return (
                f"its TLS certificate is not trusted ({exc.verify_message}); if a private CA "
                "signed it, set cafile in the FTP secret to that CA's PEM file"
            )
        case TimeoutError():
            return "no answer in time" + (f" ({timeout:g} s)" if timeout else "")
        case EOFError():
            return "the server closed the connection"
        case OSError() if exc.strerror:
            return exc.strerror
        case _:
            return str(exc) or type(exc).__name__


# --- listing (in worker threads) -------------------------------------------------------------


def _list_mlsd(ftp: _Ftp, directory: str) -> list[RemoteFile] | None:
    """None when the server does not know MLSD (then NLST is used from now on)."""
    try:
        entries = list(ftp.mlsd(directory))
    except ftplib.error_perm as exc:
        if str(exc)[:3] not in _NOT_IMPLEMENTED:
            raise
        ftp.knows_mlsd = False
        return None
    files = []
    binary = False
    for entry, facts in entries:
        if facts.get("type", "").lower() != "file":
            continue
        name = posixpath.basename(entry)
        path = posixpath.join(directory, name)
        size = facts.get("size", "")
        if not size.isdigit():  # a server that leaves the size fact out: ask for it
            if not binary:
                ftp.voidcmd("TYPE I")
                binary = True
            size = str(_size(ftp, path) or 0)
        files.append(
            RemoteFile(path=path, name=name, size=int(size), modified=facts.get("modify") or None)
        )
    return files


def _list_nlst(ftp: _Ftp, directory: str, pattern: str) -> list[RemoteFile]:
    """Names from NLST, then SIZE (which only plain files have) and MDTM for each match."""
    try:
        entries = ftp.nlst(directory)
    except (ftplib.error_perm, ftplib.error_temp) as exc:
        if "no files found" in str(exc).lower():  # ProFTPD's (450) answer for an empty directory
            return []
        raise
    names = {posixpath.basename(entry.rstrip("/")) for entry in entries}
    # NLST switched to TYPE A, and many servers refuse SIZE in ASCII mode.
    ftp.voidcmd("TYPE I")
    files = []
    for name in sorted(names):
        if name in ("", ".", "..") or not fnmatch.fnmatchcase(name, pattern):
            continue
        path = posixpath.join(directory, name)
        size = _size(ftp, path)
        if size is not None:
            files.append(RemoteFile(path=path, name=name, size=size, modified=_modified(ftp, path)))
    return files


def _size(ftp: _Ftp, path: str) -> int | None:
    """Size of a plain file; None for a directory (or anything SIZE refuses). Needs TYPE I."""
    try:
        return ftp.size(path)
    except ftplib.error_perm:
        return None


def _modified(ftp: _Ftp, path: str) -> str | None:
    if not ftp.knows_mdtm:
        return None
    try:
        reply = ftp.sendcmd(f"MDTM {path}")
    except ftplib.error_perm as exc:
        ftp.knows_mdtm = str(exc)[:3] not in _NOT_IMPLEMENTED
        return None
    if not reply.startswith("213"):
        return None
    return reply[4:].strip() or None


# --- ftplib ----------------------------------------------------------------------------------


class _Ftp(ftplib.FTP):
    """ftplib's client, remembering its data connection so that another thread can interrupt a
    transfer."""

    data_socket: socket.socket | None = None
    knows_mlsd = True
    """Whether to try MLSD; False once the server has said it does not know it."""
    knows_mdtm = True

    def ntransfercmd(
        self, cmd: str, rest: int | str | None = None
    ) -> tuple[socket.socket, int | None]:
        conn, size = super().ntransfercmd(cmd, rest)
        self.data_socket = conn
        return conn, size

    def interrupt(self) -> None:
        """From another thread: end whatever the connection's owner is blocked on."""
        for sock in (self.data_socket, self.sock):
            if sock is not None:
                # The plain socket's shutdown: SSLSocket.shutdown would drop its TLS state under
                # the feet of the thread using it.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _FtpTls(ftplib.FTP_TLS, _Ftp):
    """Explicit FTPS whose data connections resume the control connection's TLS session, as
    vsftpd and FileZilla Server require (ftplib's own FTP_TLS starts a new session each time)."""

    def ntransfercmd(
        self, cmd: str, rest: int | str | None = None
    ) -> tuple[socket.socket, int | None]:
        conn, size = _Ftp.ntransfercmd(self, cmd, rest)
        control = cast(ssl.SSLSocket, self.sock)
        try:
            # Always protected: connect() sends PROT P before any transfer.
            wrapped = self.context.wrap_socket(
                conn, server_hostname=self.host, session=control.session
            )
        except BaseException:
            conn.close()
            raise
        self.data_socket = wrapped
        return wrapped, size


def _new_connection(target: FtpTarget, timeout: float) -> _Ftp:
    """An unconnected client (building the TLS context reads the trust store)."""
    if not target.tls:
        return _Ftp(timeout=timeout)
    try:
        context = ssl.create_default_context(cafile=target.cafile)
    except OSError as exc:
        raise ConnectorError(
            f"cannot read the CA file {target.cafile!r} for {target.describe()}: "
            f"{exc.strerror or exc}; check cafile in the FTP secret"
        ) from exc
    return _FtpTls(context=context, timeout=timeout)


def _log_in(target: FtpTarget) -> Callable[[_Ftp], None]:
    def job(ftp: _Ftp) -> None:
        ftp.connect(target.host, target.port)
        if isinstance(ftp, _FtpTls):
            try:
                ftp.auth()
            except ftplib.error_perm as exc:
                raise ConnectorError(
                    f"{target.describe()} does not offer TLS (AUTH TLS: {str(exc).strip()!r}); "
                    "set tls = false if it is a plain FTP server"
                ) from exc
        try:
            ftp.login(target.user, target.password)
        except ftplib.error_perm as exc:
            reply = str(exc).strip()
            if not target.tls and any(w in reply.lower() for w in ("tls", "ssl", "encrypt")):
                fix = "the server wants FTPS: set tls = true"
            else:
                fix = "check user and password in the FTP secret"
            raise ConnectorError(
                f"{target.describe()} refused the login of user {target.user!r} ({reply!r}); {fix}"
            ) from exc
        if isinstance(ftp, _FtpTls):
            ftp.prot_p()
        ftp.voidcmd("TYPE I")

    return job


def _make_directories(ftp: _Ftp, directory: str) -> None:
    """Create `directory` and its missing parents; existing ones are fine (their MKD fails)."""
    parts = [part for part in directory.split("/") if part]
    prefix = "/" if directory.startswith("/") else ""
    for index in range(len(parts)):
        with contextlib.suppress(ftplib.error_perm):
            ftp.mkd(prefix + "/".join(parts[: index + 1]))


def _quit(ftp: _Ftp) -> None:
    try:
        if ftp.sock is not None:
            ftp.sock.settimeout(_QUIT_TIMEOUT)
            ftp.quit()
    except ftplib.all_errors:
        pass  # closing anyway; a server that is gone cannot be told
    finally:
        ftp.close()
