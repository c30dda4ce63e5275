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
Each access and each refusal is recorded (run, task, secret, time, outcome) in the run's
`secret_access.jsonl`, never a value.

Who asks: the broker answers only the run's own tasks. The client's pid (SO_PEERCRED) is taken
to its task by `peers.identify`: the task process group it or an ancestor is in, or the marker
of a process pit adopted. Anything else (another run's task, any other process of the user) is
refused and audited. The request's `task` param is only a claim: never the task named, kept as
`claimed_task` when it disagrees. A task with a `secrets` list (its own, or its DAG's) may read
only the secrets it names.
"""

from __future__ import annotations

import contextlib
import errno
import functools
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
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import attrs
import trio

from pit.actors import peers
from pit.actors.masking import Masker
from pit.actors.peers import FoundBy
from pit.clock import Clock
from pit.connectors.sql import Database, data_file, parquet_path
from pit.connectors.target import ConnectorError, Dialect, parse_target
from pit.errors import PitError
from pit.messages.sdk import BadRequest, RequestFrame, SdkRequest, SdkResponse, decode_request
from pit.spec.dag import LoadMode
from pit.spec.secrets import Secret, SecretNotFound, Secrets, as_text, field_of
from pit.store.rundir import CRASH_LOG

if TYPE_CHECKING:
    from pit.connectors.ftp import FtpClient
    from pit.connectors.sftp import SftpClient

DEFAULT_READ_TIMEOUT = 5.0
_HTTP_TIMEOUT = 60.0
"""Seconds a task's email or HTTP request may take (the task's own timeout bounds it too)."""
_HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_PEERCRED = struct.Struct("3i")
_RECEIVE_SIZE = 65536
_ACCEPT_BATCH = 64
"""Clients accepted at most per wake-up, so a flood of them cannot starve those accepted."""
_ACCEPT_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_ACCEPT_BACKOFF = 0.1
log = logging.getLogger("pit.broker")
log.addHandler(logging.NullHandler())  # `pit run` configures no logging: keep it off the console


_serving: dict[str, Broker] = {}
"""Run id -> its broker, while it serves: remote attempts' requests come in through the hub."""


def serving(run_id: str) -> Broker | None:
    return _serving.get(run_id)


@attrs.frozen(kw_only=True)
class Asker:
    """The task that sent a request, as the broker found it."""

    task: str
    by: FoundBy
    claimed: str | None = None
    """The request's `task` param when it disagrees with the task found."""


class Refused(PitError):
    """A request the broker will not answer: its client is no task of the run, or its task
    may not read the secret. Audited."""


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

    def listen(self) -> tuple[socket.socket, Path]:
        """A new listening socket (mode 0600) in the folder, and its path.

        Bound without a worker thread: the folder is local and private, so the bind is one
        quick system call, cheaper than the hand-off."""
        path = self.path / f"{next(self._names)}.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(path))
            os.chmod(path, 0o600)
            sock.listen(socket.SOMAXCONN)  # bursts of clients queue instead of failing
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock, path


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
    readable: Mapping[str, frozenset[str]] = attrs.field(factory=dict)
    """Task -> the only secrets it may read (its `secrets` list); a task absent reads any."""
    read_timeout: float = DEFAULT_READ_TIMEOUT
    _handlers: dict[str, Callable[[SdkRequest, Asker], Awaitable[str]]] = attrs.field(init=False)
    _audit_file: TextIO | None = attrs.field(init=False, default=None)
    _masker: Masker = attrs.field(init=False)
    _values: set[str] = attrs.field(init=False)
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
            "send_email": self._send_email,
            "http_request": self._http_request,
        }
        self._values = self.secrets.values() if self.secrets else set()
        self._masker = Masker(self._values)

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
            _serving[self.run_id] = self
            cleanup.callback(_serving.pop, self.run_id, None)
            async with trio.open_nursery() as nursery:
                task_status.started(BrokerHandle(socket_path=path))
                await self._accept(listener, nursery)

    # Connections are served on trio's low-level API, plain non-blocking sockets and
    # `wait_readable`: an SDK request is one small exchange, usually whole by the time it is
    # accepted, and trio's socket streams would wrap each in several cancel scopes and
    # checkpoints that cost more than the answer (bench/broker.py). The broker waits only when
    # a socket has nothing to give, and only then under a deadline.

    async def _accept(self, listener: socket.socket, nursery: trio.Nursery) -> None:
        """Start a `_serve` for each client, forever."""
        while True:
            await trio.lowlevel.wait_readable(listener)
            for _ in range(_ACCEPT_BATCH):
                try:
                    sock, _address = listener.accept()
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno not in _ACCEPT_OUT_OF_RESOURCES:
                        raise
                    # Out of file descriptors: clients wait in the backlog until some close.
                    log.error("SDK socket: cannot accept a client: %s", exc)
                    await trio.sleep(_ACCEPT_BACKOFF)
                    break
                sock.setblocking(False)
                nursery.start_soon(self._serve, sock)

    async def _serve(self, sock: socket.socket) -> None:
        try:
            frame = RequestFrame()
            try:
                response = await self._read(sock, frame)
                if response is None and frame.received and not frame.gone:
                    response = await self._respond(frame, _peer(sock))
            except Exception as exc:  # a pit bug: this connection's answer, nobody else's
                response = self._internal_error(exc)
            if response is None:
                return  # the client sent nothing, or went away
            try:
                await _send_all(sock, response.encode())
                if not frame.eof:
                    await self._drain(sock)
            except OSError:
                pass  # the client went away: nobody to answer
        finally:
            sock.close()

    async def _read(self, sock: socket.socket, frame: RequestFrame) -> SdkResponse | None:
        """Fill `frame` until it holds a whole request or the client half-closes. An error
        response when the request is too large or too deep, or unfinished at the deadline."""
        try:
            if _take(sock, frame):
                return None
            with trio.move_on_after(self.read_timeout) as deadline:
                while True:
                    await trio.lowlevel.wait_readable(sock)
                    if _take(sock, frame):
                        return None
        except OSError:  # reset by the client
            frame.eof = frame.gone = True
            return None
        except BadRequest as exc:
            return SdkResponse(error=str(exc))
        if deadline.cancelled_caught and frame.received:
            return SdkResponse(error="timed out waiting for the request")
        return None

    async def _drain(self, sock: socket.socket) -> None:
        """After answering before the client's EOF: say we are done, and discard what else it
        sends until it closes (at most `read_timeout`). Closing a Unix socket with bytes unread
        (a trailing newline, the rest of a refused request) resets the client's connection,
        which may then lose the answer."""
        if _discard(sock):
            return  # it had half-closed already (as our SDK does): nothing left to wait for
        sock.shutdown(socket.SHUT_WR)
        with trio.move_on_after(self.read_timeout):
            while not _discard(sock):
                await trio.lowlevel.wait_readable(sock)

    async def answer(self, request: bytes, asker: peers.Found) -> tuple[bytes, list[str]]:
        """A remote attempt's request (`pit.remote.hub`), its asker known by its token: the
        response, and the secret values it carries, which the worker masks in the task's
        output."""
        frame = RequestFrame()
        try:
            frame.feed(request)
            frame.eof = True
            response = await self._respond(frame, asker)
        except BadRequest as exc:
            response = SdkResponse(error=str(exc))
        except Exception as exc:  # a pit bug: this request's answer, nobody else's
            response = self._internal_error(exc)
        result = response.result or ""
        return response.encode(), [value for value in self._values if value in result]

    def refuse_connection(self, *, claimed_task: str | None, reason: str) -> None:
        """A runner that showed no valid token for an attempt of this run: audited."""
        request = SdkRequest(method="connect", params={}, claimed_task=claimed_task)
        self._audit(request, None, None, refused=reason)

    async def _respond(self, frame: RequestFrame, peer: peers.Found | None) -> SdkResponse:
        try:
            request = decode_request(frame.request())
            asker = self._asker(request, peer)
            handler = self._handlers.get(request.method)
            if handler is None:
                return SdkResponse(error=self._masker.mask(f"unknown method: {request.method}"))
            return SdkResponse(result=await handler(request, asker))
        except (BadRequest, SecretNotFound, ConnectorError, Refused) as exc:
            return SdkResponse(error=self._masker.mask(str(exc)))

    def _internal_error(self, exc: Exception) -> SdkResponse:
        message = self._masker.mask(f"internal error: {type(exc).__name__}: {exc}")
        text = self._masker.mask("".join(traceback.format_exception(exc)))
        log.error(text)
        # The run's own log of pit bugs: one append, as the audit file does on the loop.
        with contextlib.suppress(OSError), self.audit_path.with_name(CRASH_LOG).open("a") as crash:
            crash.write(text)
        return SdkResponse(error=message)

    def _asker(self, request: SdkRequest, peer: peers.Found | None) -> Asker:
        """The run's task that sent `request`; Refused (and audited) for any other client."""
        if peer is None or peer.member.run_id != self.run_id:
            self._audit(request, None, _named_secret(request), refused="no task of this run")
            raise Refused(f"{request.method}: refused: the asking process is no task of this run")
        task = peer.member.task
        claimed = request.claimed_task if request.claimed_task != task else None
        return Asker(task=task, by=peer.by, claimed=claimed)

    # --- methods ---------------------------------------------------------------------------

    def _secret(self, request: SdkRequest, asker: Asker, name: str, field: str = "") -> Secret:
        """Secret `name` for `asker`: refused (and audited) outside its task's list, audited
        once found (as `name.field` when the request is for a field of it)."""
        if self.secrets is None:
            raise SecretNotFound(
                "no secrets file: pass --secrets FILE or set secrets_dir in pit_config.toml"
            )
        listed = self.readable.get(asker.task)
        if listed is not None and name not in listed:
            self._audit(request, asker, name, refused="not in the task's secrets list")
            allowed = ", ".join(sorted(listed)) or "none"
            raise Refused(
                f"{request.method}: refused: task '{asker.task}' may not read secret '{name}'"
                f" (its secrets list: {allowed}); add it to the list in pit.toml"
            )
        value = self.secrets.find(self.project, name)
        if field:
            field_of(name, value, field)  # a field it lacks is no access
        self._audit(request, asker, f"{name}.{field}" if field else name)
        return value

    async def _get_secret(self, request: SdkRequest, asker: Asker) -> str:
        return as_text(self._secret(request, asker, request.param("key")))

    async def _get_secret_field(self, request: SdkRequest, asker: Asker) -> str:
        secret, field = request.param("secret"), request.param("field")
        return field_of(secret, self._secret(request, asker, secret, field), field)

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
        value = self._secret(request, asker, connection)
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

    async def _ftp(self, request: SdkRequest, asker: Asker) -> FtpClient | SftpClient:
        """A client connected to the FTP server the request's secret names."""
        from pit.connectors.ftp import ftp_target, open_session  # ftplib, ssl: start-up

        value = self._secret(request, asker, request.param("secret", empty=False))
        return await open_session(ftp_target(value))

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

    # Email and HTTP: the broker holds the SMTP password and the API's token; the task names
    # the secret and gets the outcome.

    async def _send_email(self, request: SdkRequest, asker: Asker) -> str:
        from pit.connectors.notify import send_email  # smtplib and email: on use

        name = request.param("secret", empty=False)
        to = _names(request, "to")
        if not to:
            raise BadRequest("send_email: give at least one address in to")
        files = [data_file(self.data_dir, f) for f in _names(request, "attachments")]
        if missing := [f.name for f in files if not f.is_file()]:
            raise ConnectorError(f"send_email: no file '{missing[0]}' in the run's data directory")
        server = self._secret(request, asker, name)
        if isinstance(server, str):
            raise ConnectorError(f"send_email: secret '{name}' must be structured (host, ...)")
        subject, body = request.param("subject"), request.param("body", "")
        send = functools.partial(send_email, server, to, subject, body, _HTTP_TIMEOUT, files)
        await trio.to_thread.run_sync(send, abandon_on_cancel=True)  # the run may end meanwhile
        return ""

    async def _http_request(self, request: SdkRequest, asker: Asker) -> str:
        from pit.connectors.notify import http_call

        name = request.param("secret", empty=False)
        method = request.param("method", "GET").upper()
        if method not in _HTTP_METHODS:
            raise BadRequest(f"http_request: method must be one of {', '.join(_HTTP_METHODS)}")
        path = request.param("path", "")
        unsafe = any(c.isspace() or ord(c) < 32 for c in path) or ".." in path.split("/")
        unsafe = unsafe or "%2e" in path.lower()  # an encoded ".." the server may decode
        if "://" in path or path.startswith("//") or unsafe or "\\" in path:
            raise BadRequest("http_request: path is a plain path under the secret's base_url")
        body = None
        if (text := request.optional("json")) is not None:
            try:
                body = json.loads(text)
            except ValueError:
                raise BadRequest("http_request: json is not JSON") from None
        api = self._secret(request, asker, name)
        if isinstance(api, str) or not api.get("base_url"):
            raise ConnectorError(f"http_request: secret '{name}' needs a base_url field")
        headers = {}
        if api.get("token"):
            headers[api.get("auth_header", "Authorization")] = f"Bearer {api['token']}"
        elif api.get("auth_value"):
            headers[api.get("auth_header", "Authorization")] = api["auth_value"]
        url = api["base_url"].rstrip("/") + "/" + path.lstrip("/")
        call = functools.partial(http_call, method, url, body, headers, _HTTP_TIMEOUT)
        status, answer = await trio.to_thread.run_sync(call, abandon_on_cancel=True)
        # An API that echoes its request must not hand the task the token.
        return json.dumps({"status": status, "body": self._masker.mask(answer)})

    def _audit(
        self, request: SdkRequest, asker: Asker | None, secret: str | None, refused: str = ""
    ) -> None:
        entry: dict[str, object] = {
            "run_id": self.run_id,
            "task": asker and asker.task,
            "found_by": asker and asker.by.value,
            "method": request.method,
            "secret": secret,
            "outcome": "refused" if refused else "accessed",
            "at": self.clock.now().isoformat(timespec="milliseconds"),
        }
        if refused:
            entry["reason"] = refused
        claimed = asker.claimed if asker else request.claimed_task
        if claimed is not None:
            entry["claimed_task"] = claimed
        # Opened at the first access and kept: an access is one appended line, flushed at once
        # (quicker than a thread hop). A run that asks for no secret gets no audit file.
        if self._audit_file is None:
            self._audit_file = self.audit_path.open("a", encoding="utf-8", buffering=1)
        self._audit_file.write(json.dumps(entry) + "\n")

    def _close_audit(self) -> None:
        if self._audit_file is not None:
            self._audit_file.close()


def _take(sock: socket.socket, frame: RequestFrame) -> bool:
    """Feed `frame` what `sock` holds now, without waiting: whether reading is over (the
    request is whole, or the client half-closed)."""
    while not frame.complete:
        try:
            chunk = sock.recv(_RECEIVE_SIZE)
        except BlockingIOError:
            return False
        if not chunk:
            frame.eof = True
            return True
        frame.feed(chunk)
    return True


def _discard(sock: socket.socket) -> bool:
    """Read and drop what `sock` holds now, without waiting: whether the client half-closed."""
    while True:
        try:
            if not sock.recv(_RECEIVE_SIZE):
                return True
        except BlockingIOError:
            return False


async def _send_all(sock: socket.socket, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view) :]
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)


def _peer(sock: socket.socket) -> peers.Found | None:
    """The task process at the other end of `sock` (SO_PEERCRED), if any."""
    try:
        data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    except OSError:
        return None
    pid, _uid, _gid = _PEERCRED.unpack(data)
    return peers.identify(pid) if pid else None


def _names(request: SdkRequest, param: str) -> list[str]:
    """A param that lists names: a JSON list of strings, or one name; none when absent."""
    text = request.optional(param)
    if text is None:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return [text]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise BadRequest(f"{request.method}: {param} must be a list of strings")


def _named_secret(request: SdkRequest) -> str | None:
    """The secret a request names, for the audit of a refusal."""
    for name in ("key", "secret", "connection"):
        value = request.params.get(name)
        if isinstance(value, str):
            return value
    return None
