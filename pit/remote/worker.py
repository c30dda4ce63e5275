"""pit's runner on a Dask worker: remote attempts, supervised as pit supervises a local one.

Dask calls `pit.dask.run_attempt` (then `run_encoded`) in one of the worker's threads, and the
attempt runs right there, on plain blocking calls: the thread is Dask's unit of concurrency,
and blocks for the attempt as it would for any task (an event loop per attempt, or a hop to one
shared loop, cost more than the attempt's own work). The worker process's runner service
(`setup_worker`) holds what its attempts share: one connection to each pit process that sends
attempts (`pit.remote.wire`: an attempt is a channel on it), read by a thread of its own, and
one SDK shim socket, served by another. For each attempt the runner:

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
  data folder is used in place where the worker sees it, else staged.
- Masks output before it leaves the worker (with the secret values the task was answered), and
  streams it to pit as it comes; pit writes the run's log.
- Keeps the time limit, and STOP or KILL from pit: SIGTERM to the group, the grace, SIGKILL,
  in one poll of the output pipe, the process's pidfd and the attempt's wake-up eventfd.
  Processes that left the group are found by their PIT_RUN_ID/PIT_TASK_NAME and killed. If the
  connection to pit breaks, its attempts are killed: nobody could see them end.
- Every process of an attempt carries PIT_WORKER_ID; the worker's guard (`setup_worker`), a
  small process of its own, kills all of them if the worker dies (kill -9 included).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import itertools
import logging
import math
import os
import queue
import select
import shutil
import signal
import socket
import struct
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pit.actors import peers
from pit.actors.broker import SocketFolder
from pit.actors.guard import RunGuard
from pit.actors.masking import Masker
from pit.actors.orphans import adopt_orphans, end_escapees_now, forget_child
from pit.actors.process import output_pipe, signal_group, start_group
from pit.messages.sdk import BadRequest, RequestFrame, SdkResponse
from pit.remote.projects import keep_tarball, projects, unpack_staged
from pit.remote.tarballs import Stamps, TooLarge, UnsafeTarball, pack_data, stamps
from pit.remote.wire import (
    PROJECT,
    SDK,
    Kind,
    Reader,
    RemoteAttempt,
    WireError,
    chunked,
    fields,
    frame,
)
from pit.remote.writer import keep_alive
from pit.runners.command import SDK_PATH

WORKER_MARK = "PIT_WORKER_ID"
_READ_SIZE = 1 << 16
_HANDSHAKE_TIMEOUT = 30.0
_SHIM_READ_TIMEOUT = 5.0
_SHIM_REQUESTS = 64
"""SDK requests a worker's shim serves at once."""
_LEFTOVER_OUTPUT_WAIT = 5.0
"""Seconds the output pipe may stay open once the attempt's process group is dead."""
_IDLE = 60.0
"""Seconds a connection to a pit process stays open with no attempt on it."""
_PEERCRED = struct.Struct("3i")
log = logging.getLogger("pit.remote")
_guard_stack = contextlib.ExitStack()
_setting_up = threading.Lock()
_service: _Service | None = None


def setup_worker() -> _Service:
    """The worker process's runner service, started at its first call: the worker's guard
    (which kills every process of its attempts if the worker dies) and the id that marks them,
    and the SDK shim's socket. The worker becomes the subreaper of what its attempts start, so
    an attempt's escapees are found among its own children rather than by reading every
    process of the machine. Idempotent."""
    global _service
    with _setting_up:
        if _service is None:
            adopt_orphans()
            worker_id = os.urandom(8).hex()
            guard = _guard_stack.enter_context(RunGuard.start())  # held for the process's life
            guard.marks(f"{WORKER_MARK}={worker_id}")
            sockets = _guard_stack.enter_context(SocketFolder.create())
            guard.holds(sockets.path)
            _service = _Service(worker_id, sockets)
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
    return _Runner(attempt, setup_worker(), _worker_address(), _cache_dir()).run()


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


class _Lost(Exception):
    """The connection to pit broke (or its frames were garbled)."""


class _Service:
    """What the attempts of one worker process share."""

    def __init__(self, worker_id: str, sockets: SocketFolder) -> None:
        self.worker_id = worker_id
        self.environ = {
            name: value
            for name, value in os.environ.items()
            # VIRTUAL_ENV is the worker's own: it would mislead a task's `uv run`
            if not name.startswith("PIT_") and name != "VIRTUAL_ENV"
        }
        """The worker's environment as the service started: what an attempt's adds to."""
        self.attempts: dict[peers.Member, _Runner] = {}
        """The attempts running, by task: whom the shim forwards a process's requests for."""
        self._lock = threading.Lock()
        self._connections: dict[tuple[str, int], _Connection] = {}
        self._connecting: dict[tuple[str, int], threading.Lock] = {}
        listener, self.shim_path = sockets.listen()
        listener.setblocking(True)
        threading.Thread(target=self._shim, args=(listener,), name="pit shim", daemon=True).start()

    def channel(self, hub: tuple[str, int], runner: _Runner) -> tuple[_Connection, int]:
        """A new channel for `runner` to the pit process at `hub`, on its connection (opened if
        there is none); OSError if it cannot be reached."""
        with self._lock:
            connecting = self._connecting.setdefault(hub, threading.Lock())
        with connecting:
            with self._lock:
                connection = self._connections.get(hub)
                if connection is not None:
                    with contextlib.suppress(_Lost):  # lost meanwhile: connect again
                        return connection, connection.open(runner)
            sock = socket.create_connection(hub, timeout=_HANDSHAKE_TIMEOUT)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # frames go as written
            keep_alive(sock)
            connection = _Connection(self, hub, sock)
            with self._lock:
                self._connections[hub] = connection
                number = connection.open(runner)
        threading.Thread(
            target=connection.read, name=f"pit hub {hub[0]}:{hub[1]}", daemon=True
        ).start()
        return connection, number

    def forget(self, connection: _Connection, *, if_idle: bool = False) -> bool:
        """Take `connection` out of use (only if it had no attempt since the last look, with
        `if_idle`); whether it was."""
        with self._lock:
            if if_idle and not connection.idle():
                return False
            if self._connections.get(connection.hub) is connection:
                del self._connections[connection.hub]
            return True

    # --- the SDK shim ----------------------------------------------------------------------

    def _shim(self, listener: socket.socket) -> None:
        """Serve the shim socket: a thread per request (they are few, and one slow client must
        not hold up the others), at most `_SHIM_REQUESTS` at a time (a flood is told so)."""
        serving = threading.BoundedSemaphore(_SHIM_REQUESTS)
        while True:
            try:
                client, _ = listener.accept()
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    time.sleep(0.1)  # out of descriptors: the queue waits meanwhile
                    continue
                log.exception("pit's SDK shim on this worker stopped")
                return
            if serving.acquire(blocking=False):
                try:
                    threading.Thread(
                        target=self._forward, args=(client, serving), daemon=True
                    ).start()
                    continue
                except RuntimeError:  # no thread to be had
                    serving.release()
            with client, contextlib.suppress(OSError):
                client.settimeout(0.5)
                client.sendall(SdkResponse(error="pit's shim on this worker is busy").encode())

    def _asker(self, client: socket.socket) -> _Runner | None:
        """The attempt whose process the client is (SO_PEERCRED, then its process group or
        parent chain, as the broker finds a local task); None for any other process, of this
        worker's user included."""
        try:
            data = client.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        except OSError:
            return None
        pid = _PEERCRED.unpack(data)[0]
        found = peers.identify(pid) if pid else None
        return None if found is None else self.attempts.get(found.member)

    def _forward(self, client: socket.socket, serving: threading.BoundedSemaphore) -> None:
        """One SDK request of a task, answered by its run's broker through pit. Whatever goes
        wrong with it ends that request only."""
        with client:
            try:
                self._forward_one(client)
            except Exception as exc:  # one request's failure is that request's only
                with contextlib.suppress(OSError):
                    client.sendall(SdkResponse(error=f"pit's shim: {exc}").encode())
            finally:
                serving.release()

    def _forward_one(self, client: socket.socket) -> None:
        request = RequestFrame()
        client.settimeout(_SHIM_READ_TIMEOUT)
        try:
            while not request.complete and (chunk := client.recv(_READ_SIZE)):
                request.feed(chunk)
        except BadRequest as exc:
            client.sendall(SdkResponse(error=str(exc)).encode())
            return
        except TimeoutError:
            pass  # what came is all there is
        if not request.received:
            return  # it sent nothing (or went away)
        runner = self._asker(client)
        if runner is None:  # answered once read: unread bytes would reset it
            refused = "refused: the asking process is no task of an attempt on this worker"
            client.sendall(SdkResponse(error=refused).encode())
            return
        response = runner.ask(request.request().decode("utf-8", "surrogateescape"))
        client.settimeout(None)
        client.sendall(response.encode())
        client.shutdown(socket.SHUT_WR)


class _Connection:
    """A worker process's connection to one pit process: its attempts, by channel. Any
    attempt's thread writes a whole frame at a time; one thread of its own reads."""

    def __init__(self, service: _Service, hub: tuple[str, int], sock: socket.socket) -> None:
        self.service = service
        self.hub = hub
        self.sock = sock
        self.channels: dict[int, _Runner] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._sending = threading.Lock()
        self._closed = False
        self._used = True
        # Blocking, with no time limit: a pit that reads slowly slows its attempts' output
        # (as a full pipe slows a local task), it does not break their connection.
        sock.settimeout(None)

    def open(self, runner: _Runner) -> int:
        """A new channel, whose frames go to `runner`: its number. _Lost once it broke."""
        with self._lock:
            if self._closed:
                raise _Lost("the connection to pit broke")
            number = next(self._ids)
            self.channels[number] = runner
            self._used = True
            return number

    def close(self, number: int) -> None:
        with self._lock:
            self.channels.pop(number, None)

    def idle(self) -> bool:
        """Whether it had no attempt since the last look (then it is closed for new ones)."""
        with self._lock:
            idle = not self.channels and not self._used
            self._used = False
            self._closed = self._closed or idle
            return idle

    def send(self, kind: Kind, channel: int, payload: bytes | Mapping[str, Any] = b"") -> None:
        data = frame(kind, channel, payload)
        with self._sending:
            if self._closed:
                raise _Lost("the connection to pit broke")
            try:
                self.sock.sendall(data)
            except OSError as exc:  # the reader ends it too, once it sees
                self._closed = True
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_RDWR)
                raise _Lost(f"the connection to pit broke: {exc}") from None

    def read(self) -> None:
        """The connection's own thread: pass pit's frames to their attempts (those of attempts
        that ended are dropped) until it breaks or stays unused for `_IDLE`; then every
        attempt still on it is killed."""
        reader = Reader()
        waiting = select.poll()
        waiting.register(self.sock, select.POLLIN)
        try:
            while True:
                if not waiting.poll(int(_IDLE * 1000)):
                    if self.service.forget(self, if_idle=True):
                        return
                    continue
                data = self.sock.recv(_READ_SIZE)
                if not data:
                    return
                for kind, channel, payload in reader.feed(data):
                    with self._lock:
                        runner = self.channels.get(channel)
                    if runner is not None:
                        runner.deliver(kind, payload)
        except (OSError, WireError) as exc:
            log.warning("the connection to pit at %s:%s ended: %r", *self.hub, exc)
        finally:
            self.service.forget(self)
            with self._lock:
                self._closed = True
                channels, self.channels = self.channels, {}
            for runner in channels.values():
                runner.lost()
            self.sock.close()


class _Answer:
    """An SDK request's answer, awaited by the shim's thread."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.value: dict[str, Any] | None = None


class _Runner:
    """One attempt, on its channel of the connection to the pit process that sent it."""

    def __init__(self, attempt: RemoteAttempt, service: _Service, worker: str, cache: Path) -> None:
        self.attempt = attempt
        self.service = service
        self.worker = worker
        self.cache = cache
        self.masker = Masker(())
        self._masking = threading.Lock()
        self._connection: _Connection | None = None
        self._channel = 0
        self._inbox: queue.SimpleQueue[tuple[Kind, bytes] | None] = queue.SimpleQueue()
        """pit's frames for the attempt's preparation (GO, the tarball, the data); None once
        the connection broke."""
        self._answers: dict[int, _Answer] = {}
        self._ids = itertools.count()
        self._stop_reason: str | None = None
        self._killed = False
        self._process: subprocess.Popen[bytes] | None = None
        self._tree_ended = False
        self._wake: int | None = None
        """An eventfd that wakes the attempt's poll when pit stops or kills it."""
        self._waking = threading.Lock()
        env = attempt.env
        self._member = peers.Member(env.get("PIT_RUN_ID", ""), env.get("PIT_TASK_NAME", ""))

    def run(self) -> dict[str, Any] | None:
        """Run the attempt; None once pit was told its end, else what became of it."""
        host, port = self.attempt.hub
        try:
            self._connection, self._channel = self.service.channel((host, port), self)
        except OSError as exc:
            return {"error": f"the worker cannot reach pit at {host}:{port}: {exc}"}
        project = (
            self.cache / "runs" / f"{self._run_name()}-{self.attempt.snapshot[:16]}" / "project"
        )
        try:
            with projects.using(project), contextlib.ExitStack() as scratch:
                return self._run_in(project, scratch)
        finally:
            self._connection.close(self._channel)

    def _run_name(self) -> str:
        name = self.attempt.env.get("PIT_RUN_ID", "")
        return name if name and "/" not in name and not name.startswith(".") else "run"

    def _run_in(self, project: Path, scratch: contextlib.ExitStack) -> dict[str, Any] | None:
        """Say which attempt this is; once pit says GO, the run's project (unpacked once per run
        on this worker, shared by its attempts here as a run's tasks share its snapshot on pit's
        machine) and its data, then the attempt."""
        try:
            hello = {"key": self.attempt.key, "token": self.attempt.token}
            self._send(Kind.HELLO, {**hello, "worker": self.worker})
            answer = self._receive(_HANDSHAKE_TIMEOUT)
            if answer is None:
                return {"error": "pit did not answer the worker"}
            kind, payload = answer
            if kind is Kind.REFUSE:
                return {"refused": fields(payload).get("reason", "")}
            if kind is not Kind.GO:
                raise WireError(f"pit answered {kind.name} to HELLO")
            if not project.is_dir():
                if (cached := self._cached_tarball()) is not None:
                    projects.unpack(project, cached.read_bytes)
                else:
                    tarball = self._fetch_tarball()
                    projects.unpack(project, lambda: tarball)
            data, found = self._stage_in(scratch)
        except (OSError, _Lost, WireError) as exc:
            return self._exit(None, False, f"cannot prepare the attempt: {exc}")
        except (tarfile.TarError, UnsafeTarball) as exc:
            return self._exit(None, False, f"cannot unpack the project: {exc}")
        return self._attempt(project, data, found)

    # --- the channel to pit ----------------------------------------------------------------

    def _send(self, kind: Kind, payload: bytes | Mapping[str, Any] = b"") -> None:
        assert self._connection is not None
        self._connection.send(kind, self._channel, payload)

    def _receive(self, timeout: float | None = None) -> tuple[Kind, bytes] | None:
        """The next frame of pit's for the attempt's preparation; None after `timeout`."""
        try:
            received = self._inbox.get(timeout=timeout)
        except queue.Empty:
            return None
        if received is None:
            self._inbox.put(None)  # for the next look too
            raise _Lost("the connection to pit broke")
        return received

    def deliver(self, kind: Kind, payload: bytes) -> None:
        """A frame of pit's for this attempt (in the connection's thread): answers for the
        shim, STOP and KILL are acted on at once; the rest waits for `_receive`."""
        try:
            if kind is Kind.ANSWER:
                answer = fields(payload)
                with self._masking:
                    self.masker.add(str(v) for v in answer.get("mask", ()))
                waiting = self._answers.pop(int(answer.get("id", -1)), None)
                if waiting is not None:
                    waiting.value = answer
                    waiting.arrived.set()
                return
            if kind is Kind.STOP:
                self._stop(str(fields(payload).get("reason", "stopped")))
            elif kind is Kind.KILL:
                self._kill("killed")
        except (WireError, ValueError, TypeError):  # garbled: as good as a lost pit
            self.lost()
            return
        self._inbox.put((kind, payload))  # a stop also ends a preparation

    def lost(self) -> None:
        """The connection to pit broke: the attempt is killed, as nobody could see it end."""
        self._inbox.put(None)
        self._kill("lost its connection to pit")
        for waiting in list(self._answers.values()):
            waiting.arrived.set()

    def ask(self, request: str) -> str:
        """The run's broker's answer to a task's SDK request (in a thread of the shim's)."""
        number = next(self._ids)
        answer = self._answers[number] = _Answer()
        try:
            self._send(Kind.SDK, {"id": number, "request": request})
            answer.arrived.wait()
        except _Lost:
            pass
        finally:
            self._answers.pop(number, None)
        if answer.value is None:
            return SdkResponse(error="pit is unreachable from the worker").encode().decode()
        return str(answer.value.get("response", ""))

    # --- the attempt -----------------------------------------------------------------------

    def _cached_tarball(self) -> Path | None:
        path = self._tarball_path()
        return path if path.is_file() else None

    def _tarball_path(self) -> Path:
        return self.cache / "snapshots" / f"{self.attempt.snapshot}.tar.gz"

    def _fetch_tarball(self) -> bytes:
        """The run's project from pit, the first time this worker runs an attempt of that code
        (checked against its digest, then kept for the next)."""
        data = self._fetch(Kind.FETCH, Kind.TARBALL)
        if hashlib.sha256(data).hexdigest() != self.attempt.snapshot:
            raise WireError("the project arrived damaged (its digest differs)")
        keep_tarball(self._tarball_path(), data)
        return data

    def _fetch(self, ask: Kind, answer: Kind) -> bytes:
        """What pit sends in `answer` chunks when asked with `ask`; WireError if it cannot."""
        self._send(ask)
        chunks: list[bytes] = []
        while True:
            received = self._receive()
            assert received is not None  # no timeout: pit answers, or the connection breaks
            kind, payload = received
            if kind is Kind.ERROR:
                raise WireError(str(fields(payload).get("error")))
            if kind in (Kind.STOP, Kind.KILL):
                raise WireError("stopped before it started")
            if kind is not answer:
                raise WireError(f"pit sent {kind.name} where {answer.name} was due")
            if not payload:
                return b"".join(chunks)
            chunks.append(payload)

    def _stage_in(self, scratch: contextlib.ExitStack) -> tuple[Path, Stamps | None]:
        """The run's data folder for the attempt: pit's own where this worker sees it (a shared
        filesystem), else a copy in a folder of the attempt (removed with `scratch`), fetched
        from pit (then `Stamps` of its files, so that what the attempt writes goes back)."""
        shared = Path(self.attempt.env.get("PIT_DATA_DIR", ""))
        if not self.attempt.stage_data and shared.is_dir():
            return shared, None
        staged = unpack_staged(self._fetch(Kind.FETCH_DATA, Kind.DATA), self.cache / "attempts")
        scratch.callback(shutil.rmtree, staged, True)
        return staged, stamps(staged)

    def _stage_out(self, staged: Path, found: Stamps) -> str | None:
        """Send pit what the attempt wrote to its staged data folder; what went wrong, if so."""
        try:
            data = pack_data(staged, found)
        except (OSError, TooLarge) as exc:
            return f"cannot send back the attempt's data: {exc}"
        try:
            for chunk in chunked(data):
                self._send(Kind.DATA, chunk)
        except _Lost:
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

    def _attempt(self, folder: Path, data: Path, found: Stamps | None) -> dict[str, Any] | None:
        if self._stop_reason is not None:  # told to stop while it prepared: nothing starts
            return self._exit(None, False, self._stop_reason)
        argv = tuple(self._place(a, folder) for a in self.attempt.argv)
        attempts = self.service.attempts
        attempts[self._member] = self  # before it starts: its first request may come at once
        wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        read_end, write_end = output_pipe()
        try:
            try:
                process, pidfd = start_group(
                    argv,
                    cwd=str(folder / self.attempt.cwd),
                    env=self._env(folder, data),
                    output=write_end,
                )
            except OSError as exc:
                error = f"cannot start {argv[0]}: {exc.strerror or exc}"
                return self._exit(None, False, error)
            finally:
                os.close(write_end)
            with self._waking:
                self._process, self._wake = process, wake
            if self._killed:  # pit went away while it started
                signal_group(process.pid, signal.SIGKILL)
            peers.join(process.pid, self._member)
            try:
                self._send(Kind.STARTED, {"pid": process.pid})
                timed_out = self._supervise(process, pidfd, read_end)
            except _Lost:
                timed_out = False  # `lost` killed it: the end below cannot reach pit either
            finally:
                peers.leave(process.pid)
                self._end_tree(process)
                if pidfd is not None:
                    os.close(pidfd)
        finally:
            if attempts.get(self._member) is self:
                del attempts[self._member]
            with self._waking:
                self._wake = None
                os.close(wake)
            os.close(read_end)
        sent_back = None if found is None else self._stage_out(data, found)
        return self._exit(process.returncode, timed_out, sent_back)

    def _exit(
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
            self._send(Kind.EXIT, result)
        except _Lost:
            return result
        return None

    def _supervise(self, process: subprocess.Popen[bytes], pidfd: int | None, output: int) -> bool:
        """Pass on the output until the process has ended and its output is drained: its time
        limit and pit's STOP mean SIGTERM, the grace, then SIGKILL; KILL (or a lost pit) means
        SIGKILL now (`_kill`). Whether its time limit ran out."""
        assert self._wake is not None
        os.set_blocking(output, False)
        poll = select.poll()
        for fd in (output, self._wake, *([pidfd] if pidfd is not None else [])):
            poll.register(fd, select.POLLIN)
        now = time.monotonic()
        limit = now + self.attempt.timeout if self.attempt.timeout is not None else math.inf
        grace_end = math.inf
        drained_by = math.inf  # once the group is dead: how long the output may still come
        timed_out = exited = drained = False
        while not exited or (not drained and now < drained_by):
            if not exited and not self._killed:
                if grace_end == math.inf and (self._stop_reason is not None or now >= limit):
                    timed_out = self._stop_reason is None
                    signal_group(process.pid, signal.SIGTERM)
                    grace_end, limit = now + self.attempt.grace, math.inf
                elif now >= grace_end:
                    signal_group(process.pid, signal.SIGKILL)
                    grace_end = math.inf
            until = min(limit, grace_end, drained_by)
            if pidfd is None and not exited:  # an old kernel: look again soon
                until = min(until, now + 0.05)
            timeout = None if until == math.inf else max(0, math.ceil((until - now) * 1000))
            for fd, _ in poll.poll(timeout):
                if fd == output:
                    chunk = _read(output)
                    if chunk:
                        self._output(chunk)
                    elif chunk is not None:  # its end: every writer closed it
                        drained = True
                        poll.unregister(output)
                elif fd == self._wake:
                    with contextlib.suppress(BlockingIOError):
                        os.eventfd_read(self._wake)
                elif fd == pidfd:
                    poll.unregister(pidfd)
                    exited = True
            if not exited and pidfd is None:
                exited = process.poll() is not None
            if exited and drained_by == math.inf:
                self._end_tree(process)  # the rest of the group and escapees: the pipe's EOF
                drained_by = time.monotonic() + _LEFTOVER_OUTPUT_WAIT
            now = time.monotonic()
        with self._masking:
            rest = self.masker.flush()
        if rest:
            self._output(rest, masked=True)
        return timed_out

    def _output(self, chunk: bytes, *, masked: bool = False) -> None:
        if not masked:
            with self._masking:
                chunk = self.masker.feed(chunk)
        if chunk:
            self._send(Kind.OUTPUT, chunk)

    def _end_tree(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL what is left of the attempt's group, reap its leader, and kill the
        processes that left the group (found by their marks). Once."""
        if self._tree_ended:
            return
        self._tree_ended = True
        signal_group(process.pid, signal.SIGKILL)
        with self._waking:  # reaped: `_kill` must not signal its group id any more
            process.wait()
        forget_child(process.pid)
        run_id, task = self.attempt.env.get("PIT_RUN_ID"), self.attempt.env.get("PIT_TASK_NAME")
        if run_id and task:
            end_escapees_now(run_id, task)

    def _stop(self, reason: str) -> None:
        self._stop_reason = self._stop_reason or reason
        with self._waking:
            if self._wake is not None:
                os.eventfd_write(self._wake, 1)

    def _kill(self, reason: str) -> None:
        """No grace: SIGKILL now, to the group if it runs."""
        self._killed = True
        self._stop(reason)
        with self._waking:
            if self._process is not None and self._process.returncode is None:
                signal_group(self._process.pid, signal.SIGKILL)


def _read(fd: int) -> bytes | None:
    """What the pipe holds (b"" at its end), or None when nothing after all."""
    try:
        return os.read(fd, _READ_SIZE)
    except BlockingIOError:
        return None
