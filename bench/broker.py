"""SDK broker throughput: `get_secret` round trips against a bare trio Unix-socket server.

Both servers run in a process of their own; one client process (trio, 50 concurrent clients)
makes 20,000 one-request-per-connection exchanges as sdk-wire-protocol.md describes (connect,
write the request, half-close, read the answer to EOF) against each, in rotating rounds.

- pit: `pit.actors.broker.Broker` with a secrets file holding the asked-for secret (so each
  request is also parsed, its client taken to its task, resolved and audited to the run's
  secret_access.jsonl, as in a run).
- bare: a trio program that reads each request to EOF and answers one constant response.

The broker answers only its run's tasks: it takes a client's pid (SO_PEERCRED) to a task
through `pit.actors.peers`, by the process group it is in. So each round starts the client
first, as the leader of a process group of its own (a new session, as a task's attempt), idle
until it reads the socket path on stdin; then the server, given the client's pid: pit's joins
that group as task "client" of its run ("bench") before it prints its socket path, the bare
one ignores it. The client starts its clock once it has the path. Both sides go through the
same steps.

Target: pit's throughput >= 0.6x the bare server's (its time <= 1/0.6 of the bare time), and
zero errors: an answer that is an error (a "refused" one included) or not the secret counts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from _harness import PYTHON, Report, child_env, cleanup, common_args, make_tmp, median, rounds

TARGET = 0.6
CLIENTS = 50
TIMEOUT = 300.0
"""Seconds one client process may take before the benchmark stops (a hung server)."""

PIT_SERVER = """
import sys, trio
from pathlib import Path
from pit.actors import peers
from pit.actors.broker import Broker
from pit.clock import SystemClock
from pit.spec.secrets import parse_secrets

folder, client_pid = Path(sys.argv[1]), int(sys.argv[2])
secrets, _ = parse_secrets('[global]\\napi_token = "tok-1234567890"\\n', "secrets.toml")
# The client leads its own process group: the broker finds it there, as a task of run "bench".
peers.join(client_pid, peers.Member("bench", "client"))

async def main():
    broker = Broker(run_id="bench", project="bench", secrets=secrets, data_dir=folder,
                    workspace=folder, audit_path=folder / "secret_access.jsonl",
                    clock=SystemClock())
    async with trio.open_nursery() as nursery:
        handle = await nursery.start(broker.run)
        print(handle.socket_path, flush=True)
        await trio.sleep_forever()

trio.run(main)
"""

BARE_SERVER = """
import socket, sys, trio
from pathlib import Path

REPLY = b'{"result": "tok-1234567890", "error": null}'

async def handle(stream):
    async with stream:
        while await stream.receive_some(65536):
            pass
        await stream.send_all(REPLY)

async def main():
    path = Path(sys.argv[1]) / "bare.sock"  # sys.argv[2], the client's pid: not needed here
    path.unlink(missing_ok=True)  # left by the previous round's server
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(str(path))
    sock.listen(socket.SOMAXCONN)
    print(path, flush=True)
    await trio.serve_listeners(handle, [trio.SocketListener(sock)])

trio.run(main)
"""

CLIENT = """
import json, sys, time, trio

total, clients = int(sys.argv[1]), int(sys.argv[2])
REQUEST = json.dumps({"method": "get_secret", "params": {"key": "api_token"}}).encode()
errors = refused = 0
first_error = None
left = total

async def exchange():
    stream = await trio.open_unix_socket(path)
    async with stream:
        await stream.send_all(REQUEST)
        await stream.send_eof()
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    return json.loads(data)

async def client():
    global errors, refused, first_error, left
    while left > 0:
        left -= 1
        try:
            answer = await exchange()
            if answer.get("error") or answer.get("result") != "tok-1234567890":
                errors += 1
                refused += "refused" in str(answer.get("error"))
                first_error = first_error or str(answer)
        except Exception as exc:
            errors += 1
            first_error = first_error or repr(exc)

async def main():
    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(client)

path = sys.stdin.readline().strip()  # the server's socket, once it serves this process group
started = time.perf_counter()
trio.run(main)
print(json.dumps({"seconds": time.perf_counter() - started, "errors": errors,
                  "refused": refused, "first_error": first_error}))
"""


def main() -> int:
    parser = common_args(__doc__.splitlines()[0])
    args = parser.parse_args()
    total = 2_000 if args.quick else 20_000
    repeat = args.repeat or (2 if args.quick else 5)
    tmp = make_tmp("broker", args)
    try:
        return _run(tmp, args, total, repeat)
    finally:
        cleanup(tmp, args)


def _run(tmp: Path, args: argparse.Namespace, total: int, repeat: int) -> int:
    env = child_env(tmp, pyc_cache=not args.no_pyc_cache)
    for name, source in (
        ("pit_server.py", PIT_SERVER),
        ("bare_server.py", BARE_SERVER),
        ("client.py", CLIENT),
    ):
        (tmp / name).write_text(source)
    errors: dict[str, int] = {"pit": 0, "bare": 0}
    refused: dict[str, int] = {"pit": 0, "bare": 0}
    first_errors: dict[str, str] = {}

    def measure(side: str, script: str) -> float:
        folder = tmp / side
        folder.mkdir(exist_ok=True)
        # The client first, leading a process group of its own (its pgid is its pid), waiting
        # for the socket path; then the server, told the client's pid.
        client = subprocess.Popen(
            [PYTHON, str(tmp / "client.py"), str(total), str(CLIENTS)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        server = None
        try:
            server = subprocess.Popen(
                [PYTHON, str(tmp / script), str(folder), str(client.pid)],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert server.stdout is not None
            socket_path = server.stdout.readline().strip()
            if not socket_path:
                raise SystemExit(f"broker: the {side} server did not start ({server.wait()})")
            out, err = client.communicate(socket_path + "\n", timeout=TIMEOUT)
            if client.returncode != 0:
                raise SystemExit(f"broker: the client failed ({client.returncode}):\n{err}")
        finally:
            for process in (client, server):
                if process is not None and process.poll() is None:
                    process.kill()
                    process.wait()
        figures = json.loads(out)
        errors[side] += figures["errors"]
        refused[side] += figures["refused"]
        if figures["first_error"] and side not in first_errors:
            first_errors[side] = figures["first_error"]
        return float(figures["seconds"])

    print(
        f"broker: {total} get_secret round trips from {CLIENTS} concurrent clients, "
        f"{repeat} rounds",
        file=sys.stderr,
    )
    samples = rounds(
        {
            "pit": lambda: measure("pit", "pit_server.py"),
            "bare": lambda: measure("bare", "bare_server.py"),
        },
        repeat,
    )
    pit_time, bare_time = median(samples["pit"]), median(samples["bare"])
    report = Report("broker", args.quick)
    ratio = bare_time / pit_time
    report.info.append(
        f"pit {total / pit_time:,.0f} req/s, bare {total / bare_time:,.0f} req/s: "
        f"{ratio:.2f}x the bare server's throughput; errors pit {errors['pit']} "
        f"({refused['pit']} refused), bare {errors['bare']}"
    )
    for side, text in first_errors.items():
        report.info.append(f"first error of {side}: {text}")
    report.check(
        "time / bare server's time (throughput >= 0.6x)",
        pit_time / bare_time,
        1 / TARGET,
        detail=f"throughput {ratio:.2f}x",
    )
    report.check("errors", errors["pit"] + errors["bare"], 0, unit="")
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
