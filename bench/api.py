"""`pit serve`'s API: reads on a big run store, live logs to 50 clients, idle cost.

reads: `pit serve` on 100 DAGs (each a webhook and a daily schedule not due) with 100,000 runs
       in its run store (10,000 with --quick; written straight into it before serve starts, as
       bench/status.py does). One httpx client (trio) sends 300 sequential requests of each kind
       (100 with --quick), interleaved: `GET /api/runs?limit=50`, `GET /api/runs/{id}` (a run
       of the store, a different one each time) and `GET /api/dags`; every answer is checked.
logs:  one run whose task writes 10,000 lines/s for 5 s (2 s with --quick), each line holding
       the wall time it was written (a Python loop, flushing every millisecond), followed live
       by 50 clients: 25 Server-Sent Events streams (`GET /api/runs/{id}/logs`, httpx) and 25
       WebSockets (`/api/runs/{id}/stream`, trio_websocket), all connected before the task
       writes its first line (it waits for a gate file the benchmark creates then). A line's
       latency is the wall time the client read it from its socket minus the time in the line.
       The same run without clients, in interleaved rounds (3 each; 1 with --quick), after one
       short untimed round of each: the task's writing time (measured by the task itself, from
       its first line to its last flush) with the clients against without.
idle:  the reads' pit serve after a few API requests, for 30 s (10 s with --quick), before the
       reads are timed: CPU of pit serve and its executor process (`utime + stime` from /proc)
       and the sum of their VmHWM, read as bench/serve.py reads them.

Targets: `GET /api/runs?limit=50` p99 < 50 ms; log latency p99 < 250 ms over every line every
client received, no line lost, the writing time with 50 clients <= 1.10x without; idle CPU
< 2% of a core, peak RSS <= 100 MB. Percentiles are nearest-rank.
"""

from __future__ import annotations

import argparse
import array
import json
import re
import resource
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio
from _harness import (
    PYTHON,
    Report,
    child_env,
    cleanup,
    common_args,
    fmt_seconds,
    make_tmp,
    median,
    spread,
    table,
    validate_workspace,
)
from serve import (
    CPU_TARGET_PERCENT,
    RSS_TARGET_MB,
    Server,
    nearest_rank,
    new_workspace,
    not_due_schedule,
    read_run,
    start_pit,
    warm_up,
    write_dag,
)
from status import T0, fill_store

try:
    import trio_websocket

    HAVE_WEBSOCKET = True
except ImportError:  # then every client follows by SSE (an info line says so)
    HAVE_WEBSOCKET = False

DAGS = 100
RUNS_PER_DAG = 1000
RUNS_P99_TARGET_MS = 50.0
LOG_P99_TARGET_MS = 250.0
SLOWDOWN_TARGET = 1.10
SSE_CLIENTS = 25
WS_CLIENTS = 25
LINES_PER_SECOND = 10_000
WARM_SECONDS = 0.5
"""Writing time of the untimed warm-up rounds."""
CONNECT_GUARD = 30.0
"""Seconds the clients get to connect before the benchmark gives up."""
DRAIN_GUARD = 30.0
"""Seconds after the task's last line the clients get to receive the rest and the end; then
they are cut off, and what they have not received counts as lost."""
RUN_GUARD = 120.0
CHATTY = "chatty"

WRITER = '''\
"""The chatty task: wait for the gate file, write RATE lines/s for SECONDS, each holding the
wall time it was written, flushing every millisecond; record its own timing in RESULTS."""
import json, os, sys, time

params = json.load(open(sys.argv[1]))
gate, rate, seconds = params["gate"], params["rate"], params["seconds"]
deadline = time.monotonic() + 300
while not os.path.exists(gate):
    if time.monotonic() > deadline:
        sys.exit("no gate file within 300 s")
    time.sleep(0.001)
opened = time.time()
total = int(rate * seconds)
pad = "x" * 60
out = sys.stdout
n, lag = 0, 0.0
start = time.perf_counter()
while n < total:
    elapsed = time.perf_counter() - start
    lag = max(lag, elapsed - n / rate)
    due = min(total, int(elapsed * rate) + 1)
    out.write("".join(f"L {i:07d} {time.time():.6f} {pad}\\n" for i in range(n, due)))
    out.flush()
    n = due
    if n < total:
        time.sleep(0.001)
writing = time.perf_counter() - start
with open(os.path.join(params["results"], os.environ["PIT_RUN_ID"] + ".json"), "w") as f:
    json.dump({"opened": opened, "writing": writing, "lines": total, "lag": lag}, f)
'''


# --- reads and idle --------------------------------------------------------------------------


def build_reads_workspace(tmp: Path, runs_per_dag: int, window: float) -> tuple[Path, int]:
    workspace = new_workspace(tmp / "reads")
    schedule = not_due_schedule(window + 120)  # start-up, the idle window and the reads
    for i in range(DAGS):
        write_dag(workspace, f"dag_{i:03d}", schedule=schedule, webhook=True)
    print(f"api: filling the run store ({DAGS * runs_per_dag:,} runs) ...", file=sys.stderr)
    runs = fill_store(workspace, runs_per_dag)
    return workspace, runs


def run_ids(count: int, runs_per_dag: int) -> list[str]:
    """`count` ids of runs in the store (as `status.fill_store` names them), spread over it."""
    import datetime as dt

    ids = []
    for k in range(count):
        n = (k * 7919) % runs_per_dag
        started = T0 + dt.timedelta(minutes=10 * n)
        ids.append(f"{started:%Y%m%d_%H%M%S}.000_dag_{(k * 37) % DAGS:03d}")
    return ids


READS = ("GET /api/runs?limit=50", "GET /api/runs/{id}", "GET /api/dags")


async def timed_reads(port: int, count: int, runs_per_dag: int) -> dict[str, list[float]]:
    """`count` sequential requests of each kind, interleaved; seconds of each (the whole
    answer read). Any wrong answer stops the benchmark."""
    ids = run_ids(count, runs_per_dag)
    samples: dict[str, list[float]] = {name: [] for name in READS}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30.0) as client:

        async def get(name: str, path: str) -> Any:
            started = time.perf_counter()
            response = await client.get(path)
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                raise SystemExit(f"{path}: {response.status_code} {response.text[:500]}")
            samples[name].append(elapsed)
            return response.json()

        for k in range(count):
            page = await get(READS[0], "/api/runs?limit=50")
            one = await get(READS[1], f"/api/runs/{ids[k]}")
            dags = await get(READS[2], "/api/dags")
            if len(page["runs"]) != 50 or page["next"] is None:
                raise SystemExit(f"GET /api/runs?limit=50: not a full page: {page}"[:800])
            if one["id"] != ids[k] or len(one["tasks"]) != 4:
                raise SystemExit(f"GET /api/runs/{ids[k]}: {one}"[:800])
            if len(dags["dags"]) != DAGS:
                raise SystemExit(f"GET /api/dags: {len(dags['dags'])} DAGs, not {DAGS}")
    return samples


def measure_reads_and_idle(
    tmp: Path,
    env: Mapping[str, str],
    args: argparse.Namespace,
    parts: set[str],
    report: Report,
) -> None:
    count = 100 if args.quick else 300
    seconds = 10.0 if args.quick else 30.0
    runs_per_dag = 100 if args.quick else RUNS_PER_DAG
    workspace, runs = build_reads_workspace(tmp, runs_per_dag, seconds)
    validate_workspace(workspace, env)
    server = start_pit(workspace, env, tmp / "reads-pit.log")
    try:
        server.wait_listening()
        # A few requests of each kind first: the API has answered (its store connection open,
        # its code loaded) before the idle window, and the timed reads start warm.
        trio.run(timed_reads, server.port, 10, runs_per_dag)
        if "idle" in parts:
            time.sleep(2.0)  # as serve.py: start-up settles
            cpu_before, wall_before = server.cpu_seconds(), time.monotonic()
            print(f"  idle: {seconds:.0f}s ...", file=sys.stderr, flush=True)
            time.sleep(seconds)
            cpu = server.cpu_seconds() - cpu_before
            percent = 100 * cpu / (time.monotonic() - wall_before)
            rss = server.peak_rss_mb()
            print(f"  idle: {percent:.2f}% CPU, {rss:.1f} MB", file=sys.stderr, flush=True)
        if "reads" in parts:
            print(f"  reads: {count} of each kind ...", file=sys.stderr, flush=True)
            samples = trio.run(timed_reads, server.port, count, runs_per_dag)
            rss_after = server.peak_rss_mb()
    finally:
        code = server.stop()
    if code != 0:
        raise SystemExit(f"pit serve exited {code}:\n{server.output()}")
    if "idle" in parts:
        print()
        print(
            table(
                [f"idle {seconds:.0f}s", "CPU of a core", "VmHWM MB"],
                [[f"{DAGS} DAGs, {runs:,} runs, API up", f"{percent:.2f}%", f"{rss:.1f}"]],
            )
        )
        report.check("idle CPU (pit serve + executor)", percent, CPU_TARGET_PERCENT, unit="%")
        report.check("idle peak RSS (sum of VmHWM)", rss, RSS_TARGET_MB, unit="MB")
    if "reads" in parts:
        rows = []
        p99: dict[str, float] = {}
        for name, values in samples.items():
            ordered = sorted(values)
            p99[name] = nearest_rank(ordered, 99) * 1000
            rows.append(
                [
                    name,
                    len(values),
                    fmt_seconds(median(values)),
                    f"{p99[name]:.1f}ms",
                    spread(values),
                ]
            )
        print()
        print(table([f"{runs:,} runs in the store", "requests", "median", "p99", "min..max"], rows))
        report.info.append(
            f"reads: GET /api/runs/{{id}} p99 {p99[READS[1]]:.1f} ms, GET /api/dags p99 "
            f"{p99[READS[2]]:.1f} ms (median {fmt_seconds(median(samples[READS[2]]))}); "
            f"peak RSS of pit serve + executor after the reads {rss_after:.1f} MB"
        )
        report.check(
            f"GET /api/runs?limit=50 p99, {runs:,} runs",
            p99[READS[0]],
            RUNS_P99_TARGET_MS,
            unit="ms",
            detail=f"median {fmt_seconds(median(samples[READS[0]]))}, {count} requests",
        )


# --- live logs -------------------------------------------------------------------------------


LINE = re.compile(rb'"message":\s*"L (\d{7} \d+\.\d{6}) ')
"""A line of the chatty task in the JSON of a log line: its number (7 digits) and the time it
was written. Found in the raw bytes of an SSE read or a WebSocket message, whichever form
carries the lines (`log` events, a `log` message per line, a `logs` message with a list)."""
STAMP = re.compile(rb'"timestamp":\s*"([^"]+)"')
"""pit's `timestamp` of a line: when its poll of the log file read the line."""
SHORT = 512
"""WebSocket messages shorter than this are decoded as they come (`complete` is one)."""


def numbers(lines: int) -> bytes:
    """The numbers of the task's lines, in order, as they appear in them (7 digits each)."""
    return b"".join(b"%07d" % n for n in range(lines))


@dataclass
class Follower:
    """What one client received.

    50 clients receive 500,000 lines a second: a client decoding each line's JSON in Python as
    it comes cannot keep up with that on this machine, and its own delay would count as pit's
    (all clients share one trio thread: each read waits for the others' work). So a client
    only notes each raw read (an SSE chunk, a WebSocket message) with the time it read it;
    `finish`, after the round, picks the lines out of them with `LINE` (in C) and checks their
    numbers in bulk.
    """

    kind: str
    expected: int
    in_order: bytes
    """`numbers(expected)`: what the numbers of the lines received are when all is well."""
    raw: list[tuple[float, bytes]] = field(default_factory=list)
    """Each read as it came, with the wall time the client read it."""
    latency: array.array[float] = field(default_factory=lambda: array.array("d"))
    """Seconds from each line's time to the client reading it."""
    to_pit: array.array[float] = field(default_factory=lambda: array.array("d"))
    """Seconds from a line's time to pit's `timestamp` of it, for the lines of reads whose
    lines all have the same `timestamp` (one poll of pit's), most of them."""
    received: bytearray = field(default_factory=bytearray)
    next_line: int = 0
    duplicates: int = 0
    completed: bool = False
    connected: bool = False
    announced: bool = False
    failure: str = ""

    def __post_init__(self) -> None:
        self.received = bytearray(self.expected)

    def finish(self) -> None:
        """Take the lines out of the reads noted (once the round is over)."""
        if self.kind == "ws":  # every message is whole
            for now, data in self.raw:
                self._feed(data, now)
        else:  # events may span reads: an event counts as read with its end
            buffer = b""
            for now, chunk in self.raw:
                buffer += chunk
                cut = buffer.rfind(b"\n\n")
                if cut >= 0:
                    events, buffer = buffer[:cut], buffer[cut + 2 :]
                    self._feed(events, now)
                    if b"event: complete\n" in events:
                        self.completed, self.failure = True, ""
        self.raw.clear()

    def _feed(self, data: bytes, now: float) -> None:
        found = LINE.findall(data)
        if not found:
            return
        first = int(found[0][:7])
        start = first * 7
        in_order = b"".join([line[:7] for line in found])
        if first >= self.next_line and in_order == self.in_order[start : start + len(in_order)]:
            # The rule: the lines that follow, in order, none missing (checked in C, whole).
            self.received[first : first + len(found)] = b"\x01" * len(found)
            times = array.array("d", map(float, [line[8:] for line in found]))
            self.next_line = first + len(found)
        else:
            times = array.array("d")
            for line in found:
                number = int(line[:7])
                if number >= self.expected or self.received[number]:
                    self.duplicates += 1
                    continue
                self.received[number] = 1
                times.append(float(line[8:]))
                self.next_line = max(self.next_line, number + 1)
        self.latency.extend(now - written for written in times)
        stamps = STAMP.findall(data)
        if stamps and stamps[0] == stamps[-1]:  # one poll's lines (a header line has null)
            seen = _epoch(stamps[0].decode())
            self.to_pit.extend(seen - written for written in times)

    @property
    def unique(self) -> int:
        return self.received.count(1)


def _epoch(rfc3339: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(rfc3339).timestamp()


async def follow_sse(
    client: httpx.AsyncClient, run_id: str, follower: Follower, ready: Callable[[], None]
) -> None:
    try:
        async with client.stream("GET", f"/api/runs/{run_id}/logs") as response:
            if response.status_code != 200:
                follower.failure = f"SSE answered {response.status_code}"
                return
            follower.connected = True
            ready()
            async for chunk in response.aiter_raw():  # the stream ends after `complete`
                follower.raw.append((time.time(), chunk))
            follower.failure = "the SSE stream ended without `complete`"  # unless it has one
    except httpx.HTTPError as failed:
        follower.failure = f"SSE: {type(failed).__name__}: {failed}"
    finally:
        ready()  # a failed connection must not hold the gate


async def follow_ws(port: int, run_id: str, follower: Follower, ready: Callable[[], None]) -> None:
    url = f"ws://127.0.0.1:{port}/api/runs/{run_id}/stream"
    try:
        async with trio_websocket.open_websocket_url(
            url, max_message_size=256 << 20, receive_buffer_size=256 << 10
        ) as ws:
            follower.connected = True
            ready()
            while True:
                message = await ws.get_message()
                now = time.time()
                data = message.encode() if isinstance(message, str) else message
                # `run`, `log` (one line), `logs` (a list of lines), `complete`
                follower.raw.append((now, data))
                if len(data) < SHORT and json.loads(data).get("event") == "complete":
                    follower.completed = True
                    return
    except trio_websocket.ConnectionClosed as closed:
        follower.failure = f"WebSocket closed before complete: {closed.reason}"
    except trio_websocket.HandshakeError as refused:
        follower.failure = f"WebSocket refused: {refused}"
    finally:
        ready()  # a refused connection must not hold the gate


@dataclass
class Round:
    clients: int
    writing: float
    """The task's own figure: its first line to its last flush, seconds."""
    lag: float
    """How far behind its pace the task fell at most, seconds."""
    after_gate: float | None
    """run.json's end of the task minus the gate opening: the writing plus the process ending
    and pit draining its output."""
    pit_cpu: float
    client_cpu: float
    wall: float
    followers: list[Follower]
    lines: int
    p99: float | None
    """Seconds: the 99th percentile latency over every line every client received."""


class ChattyRuns:
    """pit serve on a workspace with the chatty DAG; runs it with or without followers."""

    def __init__(self, tmp: Path, env: Mapping[str, str]) -> None:
        self.folder = tmp / "logs"
        self.workspace = new_workspace(self.folder / "ws")
        write_dag(self.workspace, CHATTY, webhook=True)
        self.params = self.folder / "params.json"
        self.results = self.folder / "results"
        self.results.mkdir()
        self.gate = self.folder / "gate"
        writer = self.folder / "writer.py"
        writer.write_text(WRITER)
        script = self.workspace / "projects" / CHATTY / "tasks" / "noop.sh"
        script.write_text(f"exec {PYTHON} {writer} {self.params}\n")
        validate_workspace(self.workspace, env)
        self.server: Server = start_pit(self.workspace, env, self.folder / "pit.log")

    def round(self, clients: int, seconds: float, label: str) -> Round:
        self.gate.unlink(missing_ok=True)
        lines = int(LINES_PER_SECOND * seconds)
        self.params.write_text(
            json.dumps(
                {
                    "gate": str(self.gate),
                    "rate": LINES_PER_SECOND,
                    "seconds": seconds,
                    "results": str(self.results),
                }
            )
        )
        cpu_before, wall_before = self.server.cpu_seconds(), time.monotonic()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        run_id, followers = trio.run(self._follow, clients, lines, seconds)
        client_cpu = _cpu(resource.getrusage(resource.RUSAGE_SELF)) - _cpu(usage)
        record = self._wait_ended(run_id)
        pit_cpu = self.server.cpu_seconds() - cpu_before
        wall = time.monotonic() - wall_before
        if record["state"] != "success":
            raise SystemExit(f"chatty run {run_id} ended {record['state']}:\n{record}")
        result = json.loads((self.results / f"{run_id}.json").read_text())
        task = record["tasks"][0]
        after_gate = None
        if task.get("ended_at"):
            import datetime as dt

            ended = dt.datetime.fromisoformat(task["ended_at"]).timestamp()
            after_gate = ended - result["opened"]
        for follower in followers:
            follower.finish()
        values = sorted(v for f in followers for v in f.latency)
        done = Round(
            clients=clients,
            writing=result["writing"],
            lag=result["lag"],
            after_gate=after_gate,
            pit_cpu=pit_cpu,
            client_cpu=client_cpu,
            wall=wall,
            followers=followers,
            lines=lines,
            p99=nearest_rank(values, 99) if values else None,
        )
        progress = f"writing {fmt_seconds(done.writing)}, pit CPU {pit_cpu:.2f}s"
        if followers:
            received = sum(f.unique for f in followers)
            p99 = f"{done.p99 * 1000:.0f}ms" if done.p99 is not None else "-"
            progress += (
                f", latency p99 {p99}, {received:,}/{lines * clients:,} lines received, "
                f"client CPU {client_cpu:.2f}s"
            )
        print(f"  {label}: {clients} clients: {progress}", file=sys.stderr, flush=True)
        return done

    async def _follow(self, clients: int, lines: int, seconds: float) -> tuple[str, list[Follower]]:
        port = self.server.port
        limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
        timeout = httpx.Timeout(30.0, read=None)  # a stream waits for the gate without bytes
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=timeout
        ) as client:
            response = await client.post(f"/api/dags/{CHATTY}/runs")
            if response.status_code != 202:
                raise SystemExit(f"POST /api/dags/{CHATTY}/runs: {response.status_code}")
            run_id: str = response.json()["run_id"]
            ws_clients = WS_CLIENTS if HAVE_WEBSOCKET and clients else 0
            kinds = ["ws"] * min(ws_clients, clients) + ["sse"] * (clients - ws_clients)
            in_order = numbers(lines)
            followers = [Follower(kind, lines, in_order) for kind in kinds]
            all_ready = trio.Event()
            waiting = len(followers)

            def ready(follower: Follower) -> Callable[[], None]:
                def once() -> None:  # connected, or failed to
                    nonlocal waiting
                    if not follower.announced:
                        follower.announced = True
                        waiting -= 1
                        if waiting == 0:
                            all_ready.set()

                return once

            if not followers:
                all_ready.set()
            async with trio.open_nursery() as nursery:
                for follower in followers:
                    if follower.kind == "ws":
                        nursery.start_soon(follow_ws, port, run_id, follower, ready(follower))
                    else:
                        nursery.start_soon(follow_sse, client, run_id, follower, ready(follower))
                with trio.move_on_after(CONNECT_GUARD):
                    await all_ready.wait()
                failed = [f.failure or "not connected" for f in followers if not f.connected]
                if failed:
                    nursery.cancel_scope.cancel()
                else:
                    self.gate.touch()
                    nursery.cancel_scope.deadline = trio.current_time() + seconds + DRAIN_GUARD
        if failed:
            self.gate.touch()  # the task ends; pit serve stops cleanly
            raise SystemExit(f"clients could not follow run {run_id}: {sorted(set(failed))[:3]}")
        return run_id, followers

    def _wait_ended(self, run_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + RUN_GUARD
        while time.monotonic() < deadline:
            record = read_run(self.workspace, run_id)
            if record is not None and record["state"] in ("success", "failed", "cancelled"):
                return record
            time.sleep(0.05)
        raise SystemExit(f"chatty run {run_id} did not end within {RUN_GUARD:.0f}s")

    def stop(self) -> None:
        code = self.server.stop()
        if code != 0:
            raise SystemExit(f"pit serve exited {code}:\n{self.server.output()}")


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def measure_logs(
    tmp: Path, env: Mapping[str, str], args: argparse.Namespace, report: Report
) -> None:
    seconds = 2.0 if args.quick else 5.0
    repeat = args.repeat or (1 if args.quick else 3)
    clients = SSE_CLIENTS + WS_CLIENTS
    if not HAVE_WEBSOCKET:
        report.info.append("logs: trio_websocket cannot be imported: all 50 clients use SSE")
    runs = ChattyRuns(tmp, env)
    samples: dict[int, list[Round]] = {0: [], clients: []}
    try:
        runs.server.wait_listening()
        for warm in (0, clients):  # untimed: byte-code, the WebSocket and SSE paths
            runs.round(warm, WARM_SECONDS, "warm-up")
        for index in range(repeat):
            order = [0, clients] if index % 2 == 0 else [clients, 0]
            for count in order:
                samples[count].append(runs.round(count, seconds, f"round {index + 1}/{repeat}"))
        streaming_rss = runs.server.peak_rss_mb()
    finally:
        runs.stop()

    alone, followed = samples[0], samples[clients]
    followers = [f for r in followed for f in r.followers]
    latencies = sorted(value for f in followers for value in f.latency)
    seen = sorted(value for f in followers for value in f.to_pit)
    expected = sum(r.lines * r.clients for r in followed)
    received = sum(f.unique for f in followers)
    lost = expected - received
    duplicates = sum(f.duplicates for f in followers)
    unfinished = [f for f in followers if not f.completed]

    def ms(values: list[float], percent: float) -> str:
        return f"{nearest_rank(values, percent) * 1000:.0f}ms" if values else "-"

    print()
    rows = []
    for name, rounds_ in (("no clients", alone), (f"{clients} clients", followed)):
        after = [r.after_gate for r in rounds_ if r.after_gate is not None]
        rows.append(
            [
                name,
                fmt_seconds(median(r.writing for r in rounds_)),
                spread([r.writing for r in rounds_]),
                fmt_seconds(median(after)) if after else "-",
                f"{median(r.lag for r in rounds_) * 1000:.0f}ms",
                f"{median(r.pit_cpu / r.wall for r in rounds_) * 100:.0f}%",
            ]
        )
    print(
        table(
            [
                f"{LINES_PER_SECOND:,} lines/s for {seconds:g}s",
                "writing",
                "min..max",
                "gate->task end",
                "max lag",
                "pit CPU",
            ],
            rows,
        )
    )
    print()
    by_kind = []
    for kind in ("sse", "ws"):
        mine = [f for f in followers if f.kind == kind]
        if not mine:
            continue
        values = sorted(value for f in mine for value in f.latency)
        by_kind.append(
            [
                f"{kind.upper()} x {len(mine) // len(followed)}",
                f"{sum(f.unique for f in mine):,}",
                f"{sum(r.lines for r in followed) * len(mine) // len(followed):,}",
                ms(values, 50),
                ms(values, 99),
                ms(values, 100),
            ]
        )
    print(table(["line latency", "received", "expected", "median", "p99", "max"], by_kind))

    client_share = median(r.client_cpu / r.wall for r in followed) * 100
    report.info.append(
        f"logs: of the latency, written -> pit's `timestamp` of the line (its poll of the log "
        f"file; ms steps; {len(seen):,} lines) median {ms(seen, 50)}, p99 {ms(seen, 99)}; the "
        f"rest is pit handing the line out and the client reading it"
    )
    report.info.append(
        f"logs: with {clients} clients pit serve + executor used "
        f"{median(r.pit_cpu / r.wall for r in followed) * 100:.0f}% of a core and the clients "
        f"(this process) {client_share:.0f}% over the rounds' wall time "
        f"(medians; {median(r.wall for r in followed):.1f}s per round)"
    )
    report.info.append(
        f"logs: peak RSS of that pit serve + executor (sum of VmHWM) {streaming_rss:.1f} MB"
    )
    if duplicates or unfinished:
        reasons = sorted({f.failure or "cut off by the drain guard" for f in unfinished})
        report.info.append(
            f"logs: {duplicates} duplicate lines; {len(unfinished)} of {len(followers)} client "
            f"streams ended without `complete`: {reasons[:3]}"
        )
    per_round = ", ".join(f"{r.p99 * 1000:.0f}" if r.p99 is not None else "-" for r in followed)
    report.check(
        f"log line latency p99, {clients} live clients",
        nearest_rank(latencies, 99) * 1000 if latencies else float("inf"),
        LOG_P99_TARGET_MS,
        unit="ms",
        detail=f"all {len(followed)} rounds' {len(latencies):,} lines; median {ms(latencies, 50)}, "
        f"max {ms(latencies, 100)}; p99 of each round {per_round} ms",
    )
    report.check(
        "log lines lost",
        lost,
        0,
        unit="",
        detail=f"{received:,} of {expected:,} received",
    )
    report.check(
        f"task writing time, {clients} clients / none",
        median(r.writing for r in followed) / median(r.writing for r in alone),
        SLOWDOWN_TARGET,
        detail=f"{repeat} rounds each",
    )


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = common_args(__doc__.splitlines()[0])
    parser.add_argument(
        "--only", default="reads,logs,idle", help="comma-separated parts (reads,logs,idle)"
    )
    args = parser.parse_args()
    tmp = make_tmp("api", args)
    try:
        return _run(tmp, args)
    finally:
        cleanup(tmp, args)


def _run(tmp: Path, args: argparse.Namespace) -> int:
    env = child_env(tmp, pyc_cache=not args.no_pyc_cache)
    parts = set(args.only.split(","))
    report = Report("api", args.quick)
    warm_up(tmp, env)
    if parts & {"reads", "idle"}:
        measure_reads_and_idle(tmp, env, args, parts, report)
    if "logs" in parts:
        measure_logs(tmp, env, args, report)
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
