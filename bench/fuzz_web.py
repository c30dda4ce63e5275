"""Fuzz the web listener outside pytest, at volume: raw byte streams against the real server.

    uv run python bench/fuzz_web.py                          # 100,000 inputs
    uv run python bench/fuzz_web.py --count 20000 --clients 8 --seed 7 --out /tmp/fuzz-web
    uv run python bench/fuzz_web.py --count 2000 --plain-hypercorn   # how pit served before
    uv run python bench/fuzz_web.py --count 20000 --stall-limit 1     # see "hangs" below

The server is a child process: `serve_app(create_app(FakeBackend().handle))` on 127.0.0.1, as in
tests/web (`--plain-hypercorn`: `hypercorn.trio.serve` with pit's config, which is how pit
served before a connection's errors were kept in it). `--clients` tasks send the inputs, each on
a fresh connection: first the handwritten cases of `tests/fuzz/test_web_fuzz.py` (`NASTY`), then
streams its `fuzz_case` generates (input `i` from `random.Random(f"{seed}:{i}")`, so one index
replays one input).

It counts:
- crashes: the server died, or stopped answering (a fresh connection's valid webhook, sent
  every `--check-every` inputs and after any refused connection, is not answered 202 within
  `--hang` seconds). The server is started again and the run goes on.
- hangs: a connection the server still held `--hang` seconds after the client half-closed it.
  With pit's own `STALL_LIMIT` (60 s), the connections hypercorn deadlocks (an h2c upgrade of a
  CONNECT request) count here; `--stall-limit 1` shows pit's backstop ending them.
- contained: connections the server closed after an error in the HTTP server (pit's log line).

The inputs in flight at a crash, and the first hangs, are written to `--out` as
`crash-<n>-<index>.bin` / `hang-<n>-<index>.bin` (the bytes of the chunks, concatenated, with a
`.txt` beside them). Exit code 1 on any crash or hang, 0 otherwise.
"""

from __future__ import annotations

import argparse
import functools
import logging
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import attrs
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.*

from _harness import table

from tests.fuzz.test_web_fuzz import NASTY, fuzz_case
from tests.web.rawhttp import Case, Hang, send_case, webhook_status

KEEP = 5
"""Reproducers written per kind (crash, hang)."""
CONTAINED = "closed after an error in the HTTP server"
"""What pit logs (pit.web, warning) for a connection whose error it kept in that connection."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="inputs to send")
    parser.add_argument("--clients", type=int, default=8, help="connections at once")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same inputs)")
    parser.add_argument("--hang", type=float, default=2.0, help="seconds after a half-close")
    parser.add_argument("--check-every", type=int, default=200, help="inputs between checks")
    parser.add_argument("--out", type=Path, default=None, help="where reproducers go")
    parser.add_argument(
        "--plain-hypercorn", action="store_true", help="serve with hypercorn.trio.serve"
    )
    parser.add_argument(
        "--stall-limit",
        type=float,
        default=None,
        help="the server's STALL_LIMIT in seconds (default: pit's, 60)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the child
    args = parser.parse_args()
    if args.serve:
        return serve_child(plain=args.plain_hypercorn, stall_limit=args.stall_limit)
    out = args.out or Path(tempfile.mkdtemp(prefix="pit-fuzz-web-"))
    out.mkdir(parents=True, exist_ok=True)
    fuzz = Fuzz(args, out)
    print(f"server logs and reproducers: {out}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    try:
        trio.run(fuzz.run)
    finally:
        fuzz.server.stop()
    elapsed = time.perf_counter() - started
    contained = sum(
        path.read_text(errors="replace").count(CONTAINED) for path in out.glob("server-*.log")
    )
    server = "plain hypercorn" if args.plain_hypercorn else "pit serve_app"
    rows = [(server, fuzz.sent, fuzz.crashes, fuzz.hangs, contained, f"{elapsed:.1f}s")]
    print(table(("server", "inputs", "crashes", "hangs", "contained", "total"), rows))
    print(f"rate: {fuzz.sent / elapsed:.0f} inputs/s with {args.clients} clients")
    print(f"reproducers and server logs: {out}")
    failed = bool(fuzz.crashes or fuzz.hangs)
    print("FAIL" if failed else "PASS", "fuzz_web:", "crashes or hangs" if failed else "none")
    return 1 if failed else 0


@attrs.define
class Server:
    """The server child process; `start` (again) after it died."""

    plain: bool
    stall_limit: float | None
    out: Path
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    starts: int = 0

    def start(self) -> None:
        self.stop()
        self.starts += 1
        argv = [sys.executable, __file__, "--serve"] + (["--plain-hypercorn"] * self.plain)
        if self.stall_limit is not None:
            argv += ["--stall-limit", str(self.stall_limit)]
        with (self.out / f"server-{self.starts}.log").open("wb") as log:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log
            )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the server did not start; see {log.name}")
        self.port = int(line)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None:
            return
        assert self.process.stdin is not None
        self.process.stdin.close()  # the child's cue to shut down
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


class Fuzz:
    def __init__(self, args: argparse.Namespace, out: Path) -> None:
        self.args = args
        self.out = out
        self.server = Server(args.plain_hypercorn, args.stall_limit, out)
        self.cases = list(NASTY.values())
        self.next_index = 0
        self.sent = self.crashes = self.hangs = 0
        self.in_flight: dict[int, Case] = {}
        self.restarting = trio.Lock()

    def case(self, index: int) -> Case:
        if index < len(self.cases):
            return self.cases[index]
        return fuzz_case(random.Random(f"{self.args.seed}:{index}"))

    async def run(self) -> None:
        await trio.to_thread.run_sync(self.server.start)
        async with trio.open_nursery() as nursery:
            for _ in range(self.args.clients):
                nursery.start_soon(self.client)

    async def client(self) -> None:
        while self.next_index < self.args.count:
            index, self.next_index = self.next_index, self.next_index + 1
            case = self.case(index)
            self.in_flight[index] = case
            try:
                await send_case(self.server.port, case, hang_bound=self.args.hang)
            except Hang as hang:
                self.hangs += 1
                if self.hangs <= KEEP:
                    self.keep(f"hang-{self.hangs}-{index}", case, str(hang))
            except (OSError, trio.BrokenResourceError):  # refused or reset: server still there?
                await self.check(index)
            finally:
                del self.in_flight[index]
            self.sent += 1
            if self.sent % self.args.check_every == 0:
                await self.check(index)
            if self.sent % 5000 == 0:
                print(f"  {self.sent}/{self.args.count}", file=sys.stderr, flush=True)

    async def check(self, index: int) -> None:
        """Crash if the server died or does not answer a valid webhook; then start it again."""
        async with self.restarting:
            if await self.answers():
                return
            self.crashes += 1
            suspects = {index: self.case(index), **self.in_flight}
            for suspect, case in list(suspects.items())[: KEEP * 2]:
                if self.crashes <= KEEP:
                    self.keep(f"crash-{self.crashes}-{suspect}", case, "in flight at a crash")
            print(f"  crash {self.crashes} near input {index}", file=sys.stderr, flush=True)
            await trio.to_thread.run_sync(self.server.start)

    async def answers(self) -> bool:
        if not self.server.alive:
            return False
        try:
            return await webhook_status(self.server.port, bound=self.args.hang) == 202
        except (OSError, trio.BrokenResourceError, trio.TooSlowError, ValueError, IndexError):
            return False

    def keep(self, name: str, case: Case, why: str) -> None:
        (self.out / f"{name}.bin").write_bytes(b"".join(case.chunks))
        (self.out / f"{name}.txt").write_text(f"{case!r}\n{why}\n", encoding="utf-8")


# --- the server child ------------------------------------------------------------------------


def serve_child(*, plain: bool, stall_limit: float | None) -> int:
    """Serve on a free port of 127.0.0.1, print it, serve until stdin closes. A traceback to
    stderr and exit code 1 if serving raises."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    if stall_limit is not None:
        import pit.web.serve

        pit.web.serve.STALL_LIMIT = stall_limit
    trio.run(functools.partial(_serve, plain=plain))
    return 0


async def _serve(*, plain: bool) -> None:
    import hypercorn.trio

    from pit.web import create_app, serve_app
    from pit.web.serve import _config
    from tests.web.fakebackend import FakeBackend

    backend = FakeBackend()
    app = create_app(backend.handle)
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(backend.answer_requests)
        if plain:
            config = _config()
            config.bind = ["127.0.0.1:0"]
            serve = functools.partial(
                hypercorn.trio.serve, app, config, shutdown_trigger=shutdown.wait
            )
            binds = await nursery.start(serve)
            port = int(binds[0].rpartition(":")[2])
        else:
            serve = functools.partial(serve_app, app, host="127.0.0.1", port=0, shutdown=shutdown)
            port = await nursery.start(serve)
        print(port, flush=True)
        # Until the parent closes stdin; abandoned (not waited for) if serving fails first.
        await trio.to_thread.run_sync(sys.stdin.buffer.read, abandon_on_cancel=True)
        shutdown.set()
        nursery.cancel_scope.cancel()  # the fake supervisor


if __name__ == "__main__":
    sys.exit(main())
