"""The SDK broker: one per run, on a private Unix socket whose path tasks get as PIT_SOCKET.

The sockets of one pit process share a private folder (`SocketFolder`): `pit serve` makes it
once, so starting a run costs a bind, not a folder made and removed.

Speaks sdk-wire-protocol.md: one JSON request per connection, one JSON response. The request
ends at EOF or as soon as it is one whole JSON value (clients of the original broker need not
half-close). Every request gets an answer or a closed connection, never a crash: malformed JSON,
a request over 1 MiB, unknown methods and missing params are error responses, a client that
sends nothing is dropped after `read_timeout`, and a pit bug met while answering one connection
is an `internal error` response (its traceback logged to `pit.broker`), never an exception in a
sibling. Secret values never leave through anything but a result: error responses are masked.
Each access is recorded (run, task, secret, time) in the run's `secret_access.jsonl`.

Which task asked: the peer process's PIT_TASK_NAME (its pid from SO_PEERCRED, its environment
from /proc), which a client cannot choose by what it sends. The request's `task` param is only
a claim: used when the peer cannot be identified (`"verified": false` in the audit), and kept as
`claimed_task` when it disagrees with the verified name.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import posixpath
import shutil
import socket
import struct
import tempfile
import traceback
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import attrs
import trio

from pit.actors.masking import Masker
from pit.clock import Clock
from pit.connectors.sql import Database, data_file, parquet_path
from pit.connectors.target import ConnectorError, Dialect, parse_target
from pit.messages.sdk import BadRequest, RequestFrame, SdkRequest, SdkResponse, decode_request
from pit.spec.dag import LoadMode
from pit.spec.secrets import SecretNotFound, Secrets
from pit.store.rundir import CRASH_LOG

if TYPE_CHECKING:
    from pit.connectors.ftp import FtpClient

DEFAULT_READ_TIMEOUT = 5.0
_PEERCRED = struct.Struct("3i")
_RECEIVE_SIZE = 65536
log = logging.getLogger("pit.broker")
log.addHandler(logging.NullHandler())  # `pit run` configures no logging: keep it off the console


@attrs.frozen(kw_only=True)
class Asker:
    """Who sent a request, for the audit."""

    task: str | None
    verified: bool
    """Whether `task` is the peer process's own PIT_TASK_NAME, not the request's claim."""
    claimed: str | None = None
    """The request's `task` param when it disagrees with the verified name."""


@attrs.frozen(kw_only=True)
class BrokerHandle:
    socket_path: Path


@attrs.define
class SocketFolder:
    """A private folder for SDK sockets: only this user may enter it, and its path is short
    (Unix socket paths are limited to ~107 bytes)."""

    path: Path
    _names: Iterator[int] = attrs.field(init=False, factory=itertools.count)

    @classmethod
    @contextlib.contextmanager
    def create(cls) -> Iterator[SocketFolder]:
        """A fresh folder (mode 0700), removed with whatever is left in it at the end."""
        folder = cls(Path(tempfile.mkdtemp(prefix="pit-")))
        try:
            yield folder
        finally:
            shutil.rmtree(folder.path, ignore_errors=True)

    def listen(self) -> tuple[trio.socket.SocketType, Path]:
        """A new listening socket (mode 0600) in the folder, and its path.

        Bound without a worker thread: the folder is local and private, so the bind is one
        quick system call, cheaper than the hand-off."""
        path = self.path / f"{next(self._names)}.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(path))
            os.chmod(path, 0o600)
            sock.listen(socket.SOMAXCONN)  # bursts of clients queue instead of failing
        except BaseException:
            sock.close()
            raise
        return trio.socket.from_stdlib_socket(sock), path


@attrs.define(kw_only=True)
class Broker:
    run_id: str
    project: str
    """The secrets section searched before [global]: the DAG's name."""
    secrets: Secrets | None
    """None when pit runs without a secrets file: secret requests then say how to give one."""
    data_dir: Path
    workspace: Path
    audit_path: Path
    clock: Clock
    sockets: SocketFolder | None = None
    """Where the socket goes; None: a private folder of the broker's own."""
    read_timeout: float = DEFAULT_READ_TIMEOUT
    _handlers: dict[str, Callable[[SdkRequest, Asker], Awaitable[str]]] = attrs.field(init=False)
    _audit_file: TextIO | None = attrs.field(init=False, default=None)
    _tasks_by_pid: dict[int, tuple[int, str | None]] = attrs.field(init=False, factory=dict)
    """pid -> (its process group, its PIT_TASK_NAME): a task's client asks again and again."""
    _masker: Masker = attrs.field(init=False)
    """Masks error responses: a driver's or pit's message must not carry a secret."""

    def __attrs_post_init__(self) -> None:
        self._handlers = {
            "get_secret": self._get_secret,
            "get_secret_field": self._get_secret_field,
            "load_data": self._load_data,
            "ftp_list": self._ftp_list,
            "ftp_download": self._ftp_download,
            "ftp_upload": self._ftp_upload,
            "ftp_move": self._ftp_move,
        }
        self._masker = Masker(self.secrets.values() if self.secrets else ())

    async def run(
        self, *, task_status: trio.TaskStatus[BrokerHandle] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled; the socket (and a folder of its own) is removed at the end."""
        with contextlib.ExitStack() as cleanup:
            folder = self.sockets or cleanup.enter_context(SocketFolder.create())
            listener, path = folder.listen()
            cleanup.callback(listener.close)
            cleanup.callback(path.unlink, missing_ok=True)
            cleanup.callback(self._close_audit)
            async with trio.open_nursery() as nursery:
                await nursery.start(
                    trio.serve_listeners, self._serve, [trio.SocketListener(listener)]
                )
                task_status.started(BrokerHandle(socket_path=path))

    async def _serve(self, stream: trio.SocketStream) -> None:
        async with stream:
            frame = RequestFrame()
            try:
                response = await self._read(stream, frame)
                if response is None and frame.received and not frame.gone:
                    response = await self._respond(frame, _peer_pid(stream))
            except Exception as exc:  # a pit bug: this connection's answer, nobody else's
                response = self._internal_error(exc)
            if response is None:
                return  # the client sent nothing, or went away
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await stream.send_all(response.encode())
                if not frame.eof:
                    await self._drain(stream)

    async def _read(self, stream: trio.SocketStream, frame: RequestFrame) -> SdkResponse | None:
        """Fill `frame` until it holds a whole request or the client half-closes. An error
        response when the request is too large or too deep, or unfinished at the deadline."""
        with trio.move_on_after(self.read_timeout) as deadline:
            try:
                while not frame.complete:
                    chunk = await stream.receive_some(_RECEIVE_SIZE)
                    if not chunk:
                        frame.eof = True
                        break
                    frame.feed(chunk)
            except trio.BrokenResourceError:
                frame.eof = frame.gone = True
            except BadRequest as exc:
                return SdkResponse(error=str(exc))
        if deadline.cancelled_caught and frame.received:
            return SdkResponse(error="timed out waiting for the request")
        return None

    async def _drain(self, stream: trio.SocketStream) -> None:
        """After answering before the client's EOF: say we are done, and discard what else it
        sends until it closes (at most `read_timeout`). Closing a Unix socket with bytes unread
        (a trailing newline, the rest of a refused request) resets the client's connection,
        which may then lose the answer."""
        await stream.send_eof()
        with trio.move_on_after(self.read_timeout):
            while await stream.receive_some(_RECEIVE_SIZE):
                pass

    async def _respond(self, frame: RequestFrame, peer: int | None) -> SdkResponse:
        try:
            request = decode_request(frame.request())
            handler = self._handlers.get(request.method)
            if handler is None:
                return SdkResponse(error=self._masker.mask(f"unknown method: {request.method}"))
            return SdkResponse(result=await handler(request, self._asker(request, peer)))
        except (BadRequest, SecretNotFound, ConnectorError) as exc:
            return SdkResponse(error=self._masker.mask(str(exc)))

    def _internal_error(self, exc: Exception) -> SdkResponse:
        message = self._masker.mask(f"internal error: {type(exc).__name__}: {exc}")
        text = self._masker.mask("".join(traceback.format_exception(exc)))
        log.error(text)
        # The run's own log of pit bugs: one append, as the audit file does on the loop.
        with contextlib.suppress(OSError), self.audit_path.with_name(CRASH_LOG).open("a") as crash:
            crash.write(text)
        return SdkResponse(error=message)

    def _asker(self, request: SdkRequest, peer: int | None) -> Asker:
        verified = self._task_of(peer) if peer is not None else None
        if verified is None:
            return Asker(task=request.claimed_task, verified=False)
        claimed = request.claimed_task if request.claimed_task != verified else None
        return Asker(task=verified, verified=True, claimed=claimed)

    # --- methods ---------------------------------------------------------------------------

    def _need_secrets(self) -> Secrets:
        if self.secrets is None:
            raise SecretNotFound(
                "no secrets file: pass --secrets FILE or set secrets_dir in pit_config.toml"
            )
        return self.secrets

    async def _get_secret(self, request: SdkRequest, asker: Asker) -> str:
        key = request.param("key")
        value = self._need_secrets().resolve(self.project, key)
        self._audit(request, asker, key)
        return value

    async def _get_secret_field(self, request: SdkRequest, asker: Asker) -> str:
        secret, field = request.param("secret"), request.param("field")
        value = self._need_secrets().resolve_field(self.project, secret, field)
        self._audit(request, asker, f"{secret}.{field}")
        return value

    async def _load_data(self, request: SdkRequest, asker: Asker) -> str:
        # Imported on first use: the loader brings pyarrow, ~100 ms of start-up.
        from pit.connectors.loader import load_parquet

        file, table = request.param("file"), request.param("table")
        connection = request.param("connection")
        mode_name = request.param("mode", "append")
        schema = request.optional("schema")
        try:
            mode = LoadMode(mode_name)
        except ValueError:
            modes = ", ".join(m.value for m in LoadMode)
            raise BadRequest(f"load_data: unknown mode '{mode_name}' (use {modes})") from None
        secrets = self._need_secrets()
        value = secrets.find(self.project, connection)
        self._audit(request, asker, connection)
        target = parse_target(value, self.workspace, secret=connection)
        path = parquet_path(self.data_dir, file)
        if not path.is_file():
            raise ConnectorError(f"load_data: no file '{path.name}' in the run's data directory")
        if schema == "dbo" and target.dialect is not Dialect.MSSQL:
            # The original client always sends SQL Server's default schema; elsewhere it means
            # "the database's default", whatever that is called there.
            schema = None
        async with await Database.connect(target) as database:
            rows = await database.call(
                lambda c: load_parquet(c, path, table, schema=schema, mode=mode)
            )
        return f"{rows} rows loaded"

    # FTP: the broker logs in with the secret; the task never sees the password. Every param
    # is checked before the broker connects, so a mistake is named, not a refused connection.

    async def _ftp(self, request: SdkRequest, asker: Asker) -> FtpClient:
        """A client connected to the FTP server the request's secret names."""
        from pit.connectors.ftp import FtpClient, ftp_target  # here: ftplib and ssl cost start-up

        name = request.param("secret", empty=False)
        value = self._need_secrets().find(self.project, name)
        self._audit(request, asker, name)
        return await FtpClient.connect(ftp_target(value))

    async def _ftp_list(self, request: SdkRequest, asker: Asker) -> str:
        directory, pattern = request.param("directory"), request.param("pattern", "*")
        async with await self._ftp(request, asker) as ftp:
            files = await ftp.list(directory, pattern)
        return json.dumps([f.name for f in files])

    async def _ftp_download(self, request: SdkRequest, asker: Asker) -> str:
        remote = request.optional("remote_path")
        if remote is not None:
            data_file(self.data_dir, posixpath.basename(remote))  # a name for the local copy
        elif "directory" not in request.params:
            raise BadRequest("ftp_download: give remote_path, or directory (and pattern)")
        directory, pattern = request.param("directory", ""), request.param("pattern", "*")
        async with await self._ftp(request, asker) as ftp:
            paths = [remote] if remote else [f.path for f in await ftp.list(directory, pattern)]
            local = []
            for path in paths:
                destination = data_file(self.data_dir, posixpath.basename(path))
                await ftp.download(path, destination)
                local.append(str(destination))
        return json.dumps(local)

    async def _ftp_upload(self, request: SdkRequest, asker: Asker) -> str:
        source = data_file(self.data_dir, request.param("local_name"))
        remote = request.param("remote_path", empty=False)
        if not source.is_file():
            raise ConnectorError(f"ftp_upload: no file '{source.name}' in the run's data directory")
        async with await self._ftp(request, asker) as ftp:
            await ftp.upload(source, remote)
        return ""

    async def _ftp_move(self, request: SdkRequest, asker: Asker) -> str:
        src, dst = request.param("src", empty=False), request.param("dst", empty=False)
        async with await self._ftp(request, asker) as ftp:
            await ftp.move(src, dst)
        return ""

    def _audit(self, request: SdkRequest, asker: Asker, secret: str) -> None:
        entry = {
            "run_id": self.run_id,
            "task": asker.task,
            "verified": asker.verified,
            "method": request.method,
            "secret": secret,
            "at": self.clock.now().isoformat(timespec="milliseconds"),
        }
        if asker.claimed is not None:
            entry["claimed_task"] = asker.claimed
        # Opened at the first access and kept: an access is one appended line, flushed at once
        # (quicker than a thread hop). A run that asks for no secret gets no audit file.
        if self._audit_file is None:
            self._audit_file = self.audit_path.open("a", encoding="utf-8", buffering=1)
        self._audit_file.write(json.dumps(entry) + "\n")

    def _close_audit(self) -> None:
        if self._audit_file is not None:
            self._audit_file.close()

    def _task_of(self, pid: int) -> str | None:
        """The task a client process belongs to, for clients that do not say (the original
        pit_sdk). Cached per pid; the process group tells a reused pid from the cached one."""
        try:
            group = os.getpgid(pid)
        except OSError:  # gone already
            return None
        cached = self._tasks_by_pid.get(pid)
        if cached is not None and cached[0] == group:
            return cached[1]
        task = _task_in_environ(pid)
        self._tasks_by_pid[pid] = (group, task)
        return task


def _peer_pid(stream: trio.SocketStream) -> int | None:
    try:
        data = stream.socket.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    except OSError:
        return None
    pid, _uid, _gid = _PEERCRED.unpack(data)
    return pid or None


def _task_in_environ(pid: int) -> str | None:
    """PIT_TASK_NAME of a peer process (a client that does not say which task it is)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    for entry in environ.split(b"\0"):
        if entry.startswith(b"PIT_TASK_NAME="):
            return entry.partition(b"=")[2].decode(errors="replace")
    return None
