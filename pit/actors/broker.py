"""The SDK broker: one per run, on a private Unix socket whose path tasks get as PIT_SOCKET.

The sockets of one pit process share a private folder (`SocketFolder`): `pit serve` makes it
once, so starting a run costs a bind, not a folder made and removed.

Speaks sdk-wire-protocol.md: one JSON request per connection, read to EOF, one JSON response.
Every request gets an answer or a closed connection, never a crash: malformed JSON, a request
over 1 MiB, unknown methods and missing params are error responses, and a client that sends
nothing is dropped after `read_timeout`. Secret values never leave through anything but a
response; each access is recorded (run, task, secret, time) in the run's `secret_access.jsonl`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import posixpath
import shutil
import socket
import struct
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TextIO

import attrs
import trio

from pit.clock import Clock
from pit.connectors.ftp import FtpClient, FtpTarget, ftp_target
from pit.connectors.sql import Database, data_file, parquet_path
from pit.connectors.target import ConnectorError, Dialect, parse_target
from pit.messages.sdk import MAX_REQUEST_BYTES, BadRequest, SdkRequest, SdkResponse, decode_request
from pit.spec.secrets import SecretNotFound, Secrets

AUDIT_FILE = "secret_access.jsonl"
DEFAULT_READ_TIMEOUT = 5.0
_PEERCRED = struct.Struct("3i")


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
    _handlers: dict[str, Callable[[SdkRequest], Awaitable[str]]] = attrs.field(init=False)
    _audit_file: TextIO | None = attrs.field(init=False, default=None)
    _tasks_by_pid: dict[int, tuple[int, str | None]] = attrs.field(init=False, factory=dict)
    """pid -> (its process group, its PIT_TASK_NAME): a task's client asks again and again."""

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
            peer = _peer_pid(stream)
            response = await self._answer(await self._read(stream), peer)
            if response is not None:
                with contextlib.suppress(trio.BrokenResourceError):  # the client went away
                    await stream.send_all(response.encode())

    async def _read(self, stream: trio.SocketStream) -> bytes | SdkResponse | None:
        """The request bytes; an error response if too large; None if the client sent nothing
        in time (the connection is then just closed)."""
        chunks, size = [], 0
        with trio.move_on_after(self.read_timeout) as deadline:
            try:
                while chunk := await stream.receive_some(65536):
                    size += len(chunk)
                    if size > MAX_REQUEST_BYTES:
                        return SdkResponse(error=f"request larger than {MAX_REQUEST_BYTES} bytes")
                    chunks.append(chunk)
            except trio.BrokenResourceError:
                return None
        if deadline.cancelled_caught:
            return SdkResponse(error="timed out waiting for the request") if chunks else None
        return b"".join(chunks)

    async def _answer(
        self, data: bytes | SdkResponse | None, peer: int | None
    ) -> SdkResponse | None:
        if data is None or isinstance(data, SdkResponse):
            return data
        try:
            request = decode_request(data)
            if request.task is None and peer is not None:
                request = attrs.evolve(request, task=self._task_of(peer))
            handler = self._handlers.get(request.method)
            if handler is None:
                return SdkResponse(error=f"unknown method: {request.method}")
            return SdkResponse(result=await handler(request))
        except (BadRequest, SecretNotFound, ConnectorError) as exc:
            return SdkResponse(error=str(exc))

    # --- methods ---------------------------------------------------------------------------

    def _need_secrets(self) -> Secrets:
        if self.secrets is None:
            raise SecretNotFound(
                "no secrets file: pass --secrets FILE or set secrets_dir in pit_config.toml"
            )
        return self.secrets

    async def _get_secret(self, request: SdkRequest) -> str:
        key = request.param("key")
        value = self._need_secrets().resolve(self.project, key)
        self._audit(request, key)
        return value

    async def _get_secret_field(self, request: SdkRequest) -> str:
        secret, field = request.param("secret"), request.param("field")
        value = self._need_secrets().resolve_field(self.project, secret, field)
        self._audit(request, f"{secret}.{field}")
        return value

    async def _load_data(self, request: SdkRequest) -> str:
        # Imported on first use: the loader brings pyarrow, ~100 ms of start-up.
        from pit.connectors.loader import LoadMode, load_parquet

        file, table = request.param("file"), request.param("table")
        connection = request.param("connection")
        mode_name = request.param("mode", "append")
        try:
            mode = LoadMode(mode_name)
        except ValueError:
            modes = ", ".join(m.value for m in LoadMode)
            raise BadRequest(f"load_data: unknown mode '{mode_name}' (use {modes})") from None
        secrets = self._need_secrets()
        target = parse_target(secrets.find(self.project, connection), self.workspace)
        self._audit(request, connection)
        path = parquet_path(self.data_dir, file)
        if not path.is_file():
            raise ConnectorError(f"load_data: no file '{path.name}' in the run's data directory")
        schema = request.params.get("schema") or None
        if schema == "dbo" and target.dialect is not Dialect.MSSQL:
            # The original client always sends SQL Server's default schema; elsewhere it means
            # "the database's default", whatever that is called there.
            schema = None
        async with await Database.connect(target) as database:
            rows = await database.call(
                lambda c: load_parquet(c, path, table, schema=schema, mode=mode)
            )
        return f"{rows} rows loaded"

    # FTP: the broker logs in with the secret; the task never sees the password.

    def _ftp_target(self, request: SdkRequest) -> FtpTarget:
        name = request.param("secret")
        target = ftp_target(self._need_secrets().find(self.project, name))
        self._audit(request, name)
        return target

    async def _ftp_list(self, request: SdkRequest) -> str:
        directory, pattern = request.param("directory"), request.param("pattern", "*")
        async with await FtpClient.connect(self._ftp_target(request)) as ftp:
            files = await ftp.list(directory, pattern)
        return json.dumps([f.name for f in files])

    async def _ftp_download(self, request: SdkRequest) -> str:
        target = self._ftp_target(request)
        async with await FtpClient.connect(target) as ftp:
            if "remote_path" in request.params:
                remote = request.param("remote_path")
                paths = [remote]
            else:
                listed = await ftp.list(request.param("directory"), request.param("pattern", "*"))
                paths = [f.path for f in listed]
            local = []
            for remote in paths:
                destination = data_file(self.data_dir, posixpath.basename(remote))
                await ftp.download(remote, destination)
                local.append(str(destination))
        return json.dumps(local)

    async def _ftp_upload(self, request: SdkRequest) -> str:
        source = data_file(self.data_dir, request.param("local_name"))
        if not source.is_file():
            raise ConnectorError(f"ftp_upload: no file '{source.name}' in the run's data directory")
        async with await FtpClient.connect(self._ftp_target(request)) as ftp:
            await ftp.upload(source, request.param("remote_path"))
        return ""

    async def _ftp_move(self, request: SdkRequest) -> str:
        src, dst = request.param("src"), request.param("dst")
        async with await FtpClient.connect(self._ftp_target(request)) as ftp:
            await ftp.move(src, dst)
        return ""

    def _audit(self, request: SdkRequest, secret: str) -> None:
        entry = {
            "run_id": self.run_id,
            "task": request.task,
            "method": request.method,
            "secret": secret,
            "at": self.clock.now().isoformat(timespec="milliseconds"),
        }
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
        except ProcessLookupError:
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
