"""pit's runner on a Dask worker: remote attempts, supervised as pit supervises a local one.

Dask calls `pit.dask.run_attempt` (then `run_encoded`) in one of the worker's threads, which
hands the attempt to the worker process's runner service (`setup_worker`): one trio loop in a
thread of its own (Dask's loop is asyncio's, in another), serving every attempt of the process,
with one connection to each pit process that sends attempts (`pit.remote.wire`: an attempt is a
channel on it) and one SDK shim socket. For each attempt it:

- Says on a new channel to the pit process that sent it (`RemoteAttempt.hub`) which attempt it
  runs, with the attempt's token. pit answers GO only once per attempt: an attempt Dask starts
  again on another worker (after its first worker died) is refused, and pit has already
  recorded the first one as failed.
- Unpacks the run's project (a tarball fetched from pit once per code version and kept, checked
  against its digest) into a folder of the run shared by the run's attempts on this worker,
  and starts the attempt's command there in a session of its own, with the worker's
  environment, the attempt's PIT_* variables, and PIT_SOCKET naming the shim: a Unix socket
  whose requests go to the broker of the asking process's run over the connection to pit (the
  asker is known by its pid, as the broker knows a local task, never by what it says), so the
  task's SDK works unchanged and no secret travels in its arguments or environment. A run's
  data folder is used in place where the worker sees it, else staged. File work is done in
  threads: the loop serves the other attempts meanwhile.
- Masks output before it leaves the worker (with the secret values the task was answered), and
  streams it to pit as it comes; pit writes the run's log.
- Keeps the time limit, and STOP or KILL from pit: SIGTERM to the group, the grace, SIGKILL.
  Processes that left the group are found by their PIT_RUN_ID/PIT_TASK_NAME and killed. If the
  connection to pit breaks, its attempts are killed: nobody could see them end.
- Every process of an attempt carries PIT_WORKER_ID; the worker's guard (`setup_worker`), a
  small process of its own, kills all of them if the worker dies (kill -9 included).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import io
import itertools
import logging
import os
import shutil
import signal
import socket
import struct
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import trio

from pit.actors import peers
from pit.actors.broker import SocketFolder
from pit.actors.guard import RunGuard
from pit.actors.masking import Masker
from pit.actors.orphans import adopt_orphans, end_escapees
from pit.actors.process import (
    GroupProcess,
    kill_group,
    pump_output,
    signal_group,
    spawn_group,
)
from pit.messages.sdk import BadRequest, RequestFrame, SdkResponse
from pit.remote.tarballs import Stamps, TooLarge, UnsafeTarball, pack_data, stamps, unpack
from pit.remote.wire import (
    PROJECT,
    SDK,
    Kind,
    Reader,
    RemoteAttempt,
    WireError,
    chunked,
    fields,
)
from pit.remote.writer import FrameWriter, keep_alive
from pit.runners.command import SDK_PATH

WORKER_MARK = "PIT_WORKER_ID"
_OUTPUT_CHUNK = 1 << 16
_HANDSHAKE_TIMEOUT = 30.0
_SHIM_READ_TIMEOUT = 5.0
_IDLE = 60.0
"""Seconds a connection to a pit process stays open with no attempt on it."""
_PEERCRED = struct.Struct("3i")
_TARBALLS_KEPT = 16
"""Project tarballs a worker keeps: the code of the runs it served last."""
_PROJECTS_KEPT = 16
"""Unpacked projects of runs a worker keeps unused: the runs it served last."""
log = logging.getLogger("pit.remote")
_guard_stack = contextlib.ExitStack()
_setting_up = threading.Lock()
_service: _Service | None = None


def setup_worker() -> _Service:
    """The worker process's runner service, started at its first call: the worker's guard
    (which kills every process of its attempts if the worker dies) and the id that marks them,
    the SDK shim's socket, and the service's trio loop. The worker becomes the subreaper of
    what its attempts start, so an attempt's escapees are found among its own children rather
    than by reading every process of the machine. A service whose loop ended (a bug) is
    started again."""
    global _service
    with _setting_up:
        if _service is None:
            adopt_orphans()
            worker_id = os.urandom(8).hex()
            guard = _guard_stack.enter_context(RunGuard.start())  # held for the process's life
            guard.marks(f"{WORKER_MARK}={worker_id}")
            sockets = _guard_stack.enter_context(SocketFolder.create())
            guard.holds(sockets.path)
            _service = _Service.start(worker_id, sockets)
        elif not _service.alive:
            _service = _Service.start(_service.worker_id, _service.sockets)
        return _service


def run_encoded(attempt: bytes) -> dict[str, Any] | None:
    """`run_attempt` of an encoded attempt (what Dask carries); an error if it does not decode."""
    try:
        decoded = RemoteAttempt.decode(attempt)
    except WireError as exc:
        return {"error": str(exc)}
    return run_attempt(decoded)


def run_attempt(attempt: RemoteAttempt) -> dict[str, Any] | None:
    """Run one attempt to its end (Dask's task function, in a thread of Dask's). What pit
    learns over the connection is the truth: this returns None once pit was told the end
    (a result Dask need not size or keep), else what became of the attempt, for pit to read
    off Dask's record when its runner could not tell it (`Submission.outcome`)."""
    return setup_worker().run(attempt, _worker_address(), _cache_dir())


@functools.cache
def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):  # not inside a Dask worker: a test, or a local call
        return f"pid {os.getpid()}"


@functools.cache
def _cache_dir() -> Path:
    try:
        from distributed import get_worker

        base = Path(get_worker().local_directory)
    except (ImportError, ValueError):
        base = Path(tempfile.gettempdir())
    return base / "pit"


class _Service:
    """The attempts of one worker process, on one trio loop in a thread of their own."""

    def __init__(self, worker_id: str, sockets: SocketFolder) -> None:
        self.worker_id = worker_id
        self.sockets = sockets
        self.shim_path = Path()
        self.environ = {
            name: value
            for name, value in os.environ.items()
            # VIRTUAL_ENV is the worker's own: it would mislead a task's `uv run`
            if not name.startswith("PIT_") and name != "VIRTUAL_ENV"
        }
        """The worker's environment as the service started: what an attempt's adds to."""
        self.attempts: dict[peers.Member, _Runner] = {}
        """The attempts running, by task: whom the shim forwards a process's requests for."""
        self._connections: dict[tuple[str, int], _Connection] = {}
        self._connecting: dict[tuple[str, int], trio.Lock] = {}
        self._token: trio.lowlevel.TrioToken | None = None
        self._thread: threading.Thread | None = None
        self._nursery: trio.Nursery | None = None

    @classmethod
    def start(cls, worker_id: str, sockets: SocketFolder) -> _Service:
        service = cls(worker_id, sockets)
        ready = threading.Event()
        service._thread = threading.Thread(
            target=service._main, args=(ready,), name="pit runner", daemon=True
        )
        service._thread.start()
        ready.wait()
        return service

    @property
    def alive(self) -> bool:
        return self._token is not None and self._thread is not None and self._thread.is_alive()

    def _main(self, ready: threading.Event) -> None:
        try:
            trio.run(self._serve, ready)
        except BaseException:
            log.exception("pit's runner service on this worker ended")
        finally:
            ready.set()  # also when it could not start: `run` then says so

    async def _serve(self, ready: threading.Event) -> None:
        listener, self.shim_path = self.sockets.listen()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._token = trio.lowlevel.current_trio_token()
            nursery.start_soon(self._shim, listener)
            ready.set()

    def run(self, attempt: RemoteAttempt, worker: str, cache: Path) -> dict[str, Any] | None:
        """Run `attempt` on the service's loop; called from another thread, which waits."""
        if self._token is None:
            return {"error": "pit's runner could not start on this worker (see its log)"}
        runner = _Runner(attempt, self, worker, cache)
        try:
            return trio.from_thread.run(runner.run, trio_token=self._token)
        except trio.RunFinishedError:
            return {"error": "pit's runner on this worker stopped (see its log)"}

    async def channel(self, hub: tuple[str, int], runner: _Runner) -> tuple[_Connection, int]:
        """A new channel for `runner` to the pit process at `hub`, on its connection (opened if
        there is none); OSError if it cannot be reached."""
        async with self._connecting.setdefault(hub, trio.Lock()):
            connection = self._connections.get(hub)
            if connection is None:
                stream = await trio.open_tcp_stream(*hub)
                keep_alive(stream.socket)
                connection = self._connections[hub] = _Connection(stream)
                assert self._nursery is not None
                self._nursery.start_soon(self._keep, hub, connection)
        return connection, connection.open(runner)

    async def _keep(self, hub: tuple[str, int], connection: _Connection) -> None:
        """Read the connection until it breaks, or stays unused for `_IDLE`."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(connection.writer.run)
                await connection.read(lambda: self._close_if_idle(hub, connection))
                nursery.cancel_scope.cancel()
        except Exception as exc:  # garbled frames, a broken connection: its attempts end
            log.warning("the connection to pit at %s:%s ended: %r", *hub, exc)
        finally:
            if self._connections.get(hub) is connection:
                del self._connections[hub]
            connection.end()
            with trio.CancelScope(shield=True):
                await connection.stream.aclose()

    def _close_if_idle(self, hub: tuple[str, int], connection: _Connection) -> bool:
        """Whether `connection` was idle, and is now taken out of use (atomically: no await)."""
        if connection.channels:
            return False
        del self._connections[hub]
        return True

    # --- the SDK shim ----------------------------------------------------------------------

    async def _shim(self, listener: Any) -> None:
        listening = trio.SocketListener(trio.socket.from_stdlib_socket(listener))
        await trio.serve_listeners(self._forward, [listening])

    def _asker(self, stream: trio.SocketStream) -> _Runner | None:
        """The attempt whose process the client is (SO_PEERCRED, then its process group or
        parent chain, as the broker finds a local task); None for any other process, of this
        worker's user included."""
        try:
            data = stream.socket.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        except OSError:
            return None
        pid = _PEERCRED.unpack(data)[0]
        found = peers.identify(pid) if pid else None
        return None if found is None else self.attempts.get(found.member)

    async def _forward(self, stream: trio.SocketStream) -> None:
        """One SDK request of a task, answered by its run's broker through pit. Whatever goes
        wrong with it ends that request only."""
        try:
            await self._forward_one(stream)
        except Exception as exc:  # one request's failure is that request's, never the attempt's
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await stream.send_all(SdkResponse(error=f"pit's shim: {exc}").encode())
        finally:
            await stream.aclose()

    async def _forward_one(self, stream: trio.SocketStream) -> None:
        request = RequestFrame()
        try:
            with trio.move_on_after(_SHIM_READ_TIMEOUT):
                while not request.complete and (chunk := await stream.receive_some(_OUTPUT_CHUNK)):
                    request.feed(chunk)
        except BadRequest as exc:
            await stream.send_all(SdkResponse(error=str(exc)).encode())
            return
        if not request.received:
            return  # it sent nothing (or went away)
        runner = self._asker(stream)
        if runner is None:  # answered once read: unread bytes would reset it
            refused = "refused: the asking process is no task of an attempt on this worker"
            await stream.send_all(SdkResponse(error=refused).encode())
            return
        response = await runner.ask(request.request().decode("utf-8", "surrogateescape"))
        await stream.send_all(response.encode())
        await stream.send_eof()


@attrs.define(eq=False)
class _Connection:
    """A worker process's connection to one pit process: its attempts, by channel."""

    stream: trio.SocketStream
    writer: FrameWriter = attrs.field(
        default=attrs.Factory(lambda self: FrameWriter(self.stream), takes_self=True)
    )
    channels: dict[int, _Runner] = attrs.field(factory=dict)
    _ids: Iterator[int] = attrs.field(factory=lambda: itertools.count(1))

    def open(self, runner: _Runner) -> int:
        """A new channel, whose frames go to `runner`: its number."""
        number = next(self._ids)
        self.channels[number] = runner
        return number

    def close(self, number: int) -> None:
        self.channels.pop(number, None)

    async def send(self, kind: Kind, channel: int, payload: bytes | Mapping[str, Any]) -> None:
        await self.writer.send(kind, channel, payload)

    async def read(self, idle: Callable[[], bool]) -> None:
        """Pass pit's frames to their channels (those of attempts that ended are dropped) until
        it closes, or until `idle` says the connection was unused for `_IDLE`."""
        reader = Reader()
        while True:
            with trio.move_on_after(_IDLE) as waiting:
                data = await self.stream.receive_some(_OUTPUT_CHUNK)
            if waiting.cancelled_caught:
                if idle():
                    return
                continue
            if not data:
                return
            for kind, channel, payload in reader.feed(data):
                if (runner := self.channels.get(channel)) is not None:
                    runner.deliver(kind, payload)

    def end(self) -> None:
        """The connection is gone: each attempt on it learns so (and is killed)."""
        channels, self.channels = self.channels, {}
        for runner in channels.values():
            runner.lost()


class _Runner:
    """One attempt, on its channel of the connection to the pit process that sent it."""

    def __init__(self, attempt: RemoteAttempt, service: _Service, worker: str, cache: Path) -> None:
        self.attempt = attempt
        self.service = service
        self.worker = worker
        self.cache = cache
        self.masker = Masker(())
        self._connection: _Connection | None = None
        self._channel = 0
        self._inbox: collections.deque[tuple[Kind, bytes]] = collections.deque()
        """pit's frames for the attempt's preparation (GO, the tarball, the data)."""
        self._arrived = trio.Event()
        self._lost = False
        self._process: GroupProcess | None = None
        self._answers: dict[int, trio.MemorySendChannel[dict[str, Any]]] = {}
        self._ids = itertools.count()
        self._stop_scope = trio.CancelScope()
        self._grace_scope: trio.CancelScope | None = None
        self._stop_reason: str | None = None
        self._killed = False
        self._tree_ended = False
        env = attempt.env
        self._member = peers.Member(env.get("PIT_RUN_ID", ""), env.get("PIT_TASK_NAME", ""))

    async def run(self) -> dict[str, Any] | None:
        """Run the attempt; None once pit was told its end, else what became of it."""
        host, port = self.attempt.hub
        try:
            self._connection, self._channel = await self.service.channel((host, port), self)
        except OSError as exc:
            return {"error": f"the worker cannot reach pit at {host}:{port}: {exc}"}
        project = (
            self.cache / "runs" / f"{self._run_name()}-{self.attempt.snapshot[:16]}" / "project"
        )
        try:
            with _projects.using(project), contextlib.ExitStack() as scratch:
                return await self._run_in(project, scratch)
        finally:
            self._connection.close(self._channel)

    def _run_name(self) -> str:
        name = self.attempt.env.get("PIT_RUN_ID", "")
        return name if name and "/" not in name and not name.startswith(".") else "run"

    async def _run_in(self, project: Path, scratch: contextlib.ExitStack) -> dict[str, Any] | None:
        """Say which attempt this is; once pit says GO, the run's project (unpacked once per run
        on this worker, shared by its attempts here as a run's tasks share its snapshot on pit's
        machine) and its data, then the attempt."""
        try:
            hello = {"key": self.attempt.key, "token": self.attempt.token}
            await self._send(Kind.HELLO, {**hello, "worker": self.worker})
            with trio.move_on_after(_HANDSHAKE_TIMEOUT) as handshake:
                kind, payload = await self._receive()
            if handshake.cancelled_caught:
                return {"error": "pit did not answer the worker"}
            if kind is Kind.REFUSE:
                return {"refused": fields(payload).get("reason", "")}
            if kind is not Kind.GO:
                raise WireError(f"pit answered {kind.name} to HELLO")
            # A stat on the loop: a thread's hop would cost more than it, for the attempts
            # after a run's first here.
            if not project.is_dir():  # noqa: ASYNC240
                if (cached := self._cached_tarball()) is not None:
                    await trio.to_thread.run_sync(_projects.unpack, project, cached.read_bytes)
                else:
                    tarball = await self._fetch_tarball()
                    await trio.to_thread.run_sync(_projects.unpack, project, lambda: tarball)
            data, found = await self._stage_in(scratch)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, WireError) as exc:
            return await self._exit(None, False, f"cannot prepare the attempt: {exc}")
        except (tarfile.TarError, UnsafeTarball) as exc:
            return await self._exit(None, False, f"cannot unpack the project: {exc}")
        return await self._attempt(project, data, found)

    # --- the channel to pit ----------------------------------------------------------------

    async def _send(self, kind: Kind, payload: bytes | Mapping[str, Any] = b"") -> None:
        assert self._connection is not None
        await self._connection.send(kind, self._channel, payload)

    async def _receive(self) -> tuple[Kind, bytes]:
        """The next frame of pit's for the attempt's preparation."""
        while not self._inbox:
            if self._lost:
                raise trio.BrokenResourceError("the connection to pit broke")
            self._arrived = trio.Event()
            await self._arrived.wait()
        return self._inbox.popleft()

    def deliver(self, kind: Kind, payload: bytes) -> None:
        """A frame of pit's for this attempt (from the connection's reader): answers for the
        shim, STOP and KILL are acted on at once; the rest waits for `_receive`."""
        try:
            if kind is Kind.ANSWER:
                answer = fields(payload)
                self.masker.add(str(v) for v in answer.get("mask", ()))
                waiting = self._answers.pop(int(answer.get("id", -1)), None)
                if waiting is not None:
                    waiting.send_nowait(answer)
                return
            if kind is Kind.STOP:
                self._stop(str(fields(payload).get("reason", "stopped")))
            elif kind is Kind.KILL:
                self._kill("killed")
        except (WireError, ValueError, trio.WouldBlock):  # garbled: as good as a lost pit
            self.lost()
            return
        self._inbox.append((kind, payload))  # a stop also ends a preparation
        self._arrived.set()

    def lost(self) -> None:
        """The connection to pit broke: the attempt is killed, as nobody could see it end."""
        self._lost = True
        self._arrived.set()
        self._kill("lost its connection to pit")
        for waiting in self._answers.values():
            waiting.close()

    async def ask(self, request: str) -> str:
        """The run's broker's answer to a task's SDK request."""
        number = next(self._ids)
        send, receive = trio.open_memory_channel[dict[str, Any]](1)
        self._answers[number] = send
        try:
            await self._send(Kind.SDK, {"id": number, "request": request})
            return str((await receive.receive()).get("response", ""))
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.EndOfChannel):
            return SdkResponse(error="pit is unreachable from the worker").encode().decode()
        finally:
            self._answers.pop(number, None)

    # --- the attempt -----------------------------------------------------------------------

    def _cached_tarball(self) -> Path | None:
        path = self._tarball_path()
        return path if path.is_file() else None

    def _tarball_path(self) -> Path:
        return self.cache / "snapshots" / f"{self.attempt.snapshot}.tar.gz"

    async def _fetch_tarball(self) -> bytes:
        """The run's project from pit, the first time this worker runs an attempt of that code
        (checked against its digest, then kept for the next)."""
        data = await self._fetch(Kind.FETCH, Kind.TARBALL)
        if hashlib.sha256(data).hexdigest() != self.attempt.snapshot:
            raise WireError("the project arrived damaged (its digest differs)")
        await trio.to_thread.run_sync(_keep, self._tarball_path(), data)
        return data

    async def _fetch(self, ask: Kind, answer: Kind) -> bytes:
        """What pit sends in `answer` chunks when asked with `ask`; WireError if it cannot."""
        await self._send(ask)
        chunks: list[bytes] = []
        while True:
            kind, payload = await self._receive()
            if kind is Kind.ERROR:
                raise WireError(str(fields(payload).get("error")))
            if kind in (Kind.STOP, Kind.KILL):
                raise WireError("stopped before it started")
            if kind is not answer:
                raise WireError(f"pit sent {kind.name} where {answer.name} was due")
            if not payload:
                return b"".join(chunks)
            chunks.append(payload)

    async def _stage_in(self, scratch: contextlib.ExitStack) -> tuple[Path, Stamps | None]:
        """The run's data folder for the attempt: pit's own where this worker sees it (a shared
        filesystem), else a copy in a folder of the attempt (removed with `scratch`), fetched
        from pit (then `Stamps` of its files, so that what the attempt writes goes back)."""
        shared = Path(self.attempt.env.get("PIT_DATA_DIR", ""))
        if not self.attempt.stage_data and shared.is_dir():  # noqa: ASYNC240  (a stat, as above)
            return shared, None
        data = await self._fetch(Kind.FETCH_DATA, Kind.DATA)
        staged = await trio.to_thread.run_sync(_unpack_staged, data, self.cache / "attempts")
        scratch.callback(shutil.rmtree, staged, True)
        return staged, await trio.to_thread.run_sync(stamps, staged)

    async def _stage_out(self, staged: Path, found: Stamps) -> str | None:
        """Send pit what the attempt wrote to its staged data folder; what went wrong, if so."""
        try:
            data = await trio.to_thread.run_sync(pack_data, staged, found)
        except (OSError, TooLarge) as exc:
            return f"cannot send back the attempt's data: {exc}"
        try:
            for chunk in chunked(data):
                await self._send(Kind.DATA, chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return "lost pit while sending back the attempt's data"
        return None

    def _env(self, folder: Path, data: Path) -> dict[str, str]:
        env = dict(self.service.environ)
        for name, value in self.attempt.env.items():
            env[name] = self._place(value, folder)
        env["PIT_SOCKET"] = str(self.service.shim_path)
        env["PIT_DATA_DIR"] = str(data)
        env[WORKER_MARK] = self.service.worker_id
        if self.attempt.uv_project:
            env["UV_PROJECT_ENVIRONMENT"] = str(self._venv(folder))
        return env

    def _place(self, text: str, folder: Path) -> str:
        text = text.replace(PROJECT, str(folder))
        return text.replace(SDK, str(SDK_PATH or ""))

    def _venv(self, folder: Path) -> Path:
        """The worker's uv environment for this project's dependencies, kept between attempts."""
        digest = hashlib.sha256()
        for name in ("pyproject.toml", "uv.lock"):
            with contextlib.suppress(OSError):
                digest.update((folder / name).read_bytes())
        return self.cache / "venvs" / digest.hexdigest()[:16]

    async def _attempt(
        self, folder: Path, data: Path, found: Stamps | None
    ) -> dict[str, Any] | None:
        if self._stop_reason is not None:  # told to stop while it prepared: nothing starts
            return await self._exit(None, False, self._stop_reason)
        argv = tuple(self._place(a, folder) for a in self.attempt.argv)
        attempts = self.service.attempts
        attempts[self._member] = self  # before it starts: its first request may come at once
        try:
            try:
                process = spawn_group(
                    argv,
                    cwd=str(folder / self.attempt.cwd),
                    env=self._env(folder, data),
                    log=io.BytesIO(),  # unused: output is piped
                    pipe=True,
                )
            except OSError as exc:
                error = f"cannot start {argv[0]}: {exc.strerror or exc}"
                return await self._exit(None, False, error)
            self._process = process
            peers.join(process.pid, self._member)
            try:
                await self._send(Kind.STARTED, {"pid": process.pid})
                timed_out = await self._supervise(process)
            finally:
                peers.leave(process.pid)
                if not self._tree_ended:  # `_supervise` did not get to it
                    with trio.CancelScope(shield=True):
                        await self._end_tree(process)
                process.close()
        finally:
            if attempts.get(self._member) is self:
                del attempts[self._member]
        sent_back = None if found is None else await self._stage_out(data, found)
        return await self._exit(process.returncode, timed_out, sent_back)

    async def _exit(
        self, returncode: int | None, timed_out: bool, error: str | None
    ) -> dict[str, Any] | None:
        """Tell pit how the attempt ended: None once told, else the end it could not be told
        (then Dask's record of the task says it)."""
        result = {
            "returncode": returncode,
            "timed_out": timed_out,
            "error": error,
            "stopped": self._stop_reason,
            "worker": self.worker,
        }
        try:
            await self._send(Kind.EXIT, result)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return result
        return None

    async def _supervise(self, process: GroupProcess) -> bool:
        """Pump the output until the process ends (or its time runs out, or pit stops it).
        Whether its time limit ran out."""
        async with trio.open_nursery() as nursery:
            pumped = trio.Event()
            nursery.start_soon(self._pump, process, pumped)
            timed_out = await self._wait(process)
            await self._end_tree(process)
            if not pumped.is_set():
                with trio.move_on_after(5):
                    await pumped.wait()
            nursery.cancel_scope.cancel()
        return timed_out

    async def _wait(self, process: GroupProcess) -> bool:
        if self.attempt.timeout is not None:
            self._stop_scope.deadline = trio.current_time() + self.attempt.timeout
        with self._stop_scope:
            await process.wait()
        timed_out = self._stop_scope.cancelled_caught and self._stop_reason is None
        if process.returncode is None:
            signal_group(process.pid, signal.SIGTERM)
            self._grace_scope = trio.CancelScope(deadline=trio.current_time() + self.attempt.grace)
            if self._killed:
                self._grace_scope.cancel()
            with self._grace_scope:
                await process.wait()
        return timed_out

    async def _end_tree(self, process: GroupProcess) -> None:
        self._tree_ended = True
        await kill_group(process)
        run_id, task = self.attempt.env.get("PIT_RUN_ID"), self.attempt.env.get("PIT_TASK_NAME")
        if run_id and task:
            await end_escapees(run_id, task)

    def _stop(self, reason: str) -> None:
        self._stop_reason = self._stop_reason or reason
        self._stop_scope.cancel()

    def _kill(self, reason: str) -> None:
        """No grace: SIGKILL now, to the group if it runs."""
        self._killed = True
        self._stop(reason)
        if self._grace_scope is not None:
            self._grace_scope.cancel()
        if self._process is not None and self._process.returncode is None:
            signal_group(self._process.pid, signal.SIGKILL)

    async def _pump(self, process: GroupProcess, done: trio.Event) -> None:
        async def forward(data: bytes) -> None:
            await self._send(Kind.OUTPUT, data)

        try:  # no log here: pit writes the run's
            await pump_output(process, None, forward, self.masker)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # pit is gone: `lost` kills the attempt
        finally:
            done.set()


def _unpack_staged(data: bytes, attempts: Path) -> Path:
    """The run's data folder as pit sent it, in a new folder under `attempts`."""
    attempts.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(dir=attempts))
    try:
        unpack(data, staged)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return staged


def _keep(path: Path, data: bytes) -> None:
    """Write a tarball into the cache whole (a rename), dropping the oldest beyond
    `_TARBALLS_KEPT`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    partial.write_bytes(data)
    partial.replace(path)
    kept = sorted(path.parent.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in kept[_TARBALLS_KEPT:]:
        old.unlink(missing_ok=True)


class _Projects:
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


_projects = _Projects()
