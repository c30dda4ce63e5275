"""SDK broker throughput: `get_secret` round trips against a bare trio Unix-socket server.

Both servers run in a process of their own; one client process (trio, 50 concurrent clients)
makes 20,000 one-request-per-connection exchanges as sdk-wire-protocol.md describes (connect,
write the request, half-close, read the answer to EOF) against each, in rotating rounds.

- pit: `pit.actors.broker.Broker` with a secrets file holding the asked-for secret (so each
  request is also parsed, resolved and audited to the run's secret_access.jsonl, as in a run).
- bare: a trio program that reads each request to EOF and answers one constant response.

Target: pit's throughput >= 0.6x the bare server's (its time <= 1/0.6 of the bare time), and
zero errors.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from _harness import PYTHON, Report, child_env, cleanup, common_args, make_tmp, median, rounds

TARGET = 0.6
CLIENTS = 50

PIT_SERVER = """
import sys, trio
from pathlib import Path
from pit.actors.broker import Broker
from pit.clock import SystemClock
from pit.spec.secrets import parse_secrets

folder = Path(sys.argv[1])
secrets, _ = parse_secrets('[global]\\napi_token = "tok-1234567890"\\n', "secrets.toml")

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
    path = Path(sys.argv[1]) / "bare.sock"
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

path, total, clients = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
REQUEST = json.dumps({"method": "get_secret", "params": {"key": "api_token"}}).encode()
errors = 0
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
    global errors, left
    while left > 0:
        left -= 1
        try:
            answer = await exchange()
            if answer.get("error") or answer.get("result") != "tok-1234567890":
                errors += 1
        except Exception:
            errors += 1

async def main():
    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(client)

started = time.perf_counter()
trio.run(main)
print(json.dumps({"seconds": time.perf_counter() - started, "errors": errors}))
"""


def main() -> int:
    parser = common_args(__doc__ or "")
    args = parser.parse_args()
    total = 2_000 if args.quick else 20_000
    repeat = args.repeat or (2 if args.quick else 5)
    tmp = make_tmp("broker", args)
    env = child_env(tmp, pyc_cache=not args.no_pyc_cache)
    for name, source in (
        ("pit_server.py", PIT_SERVER),
        ("bare_server.py", BARE_SERVER),
        ("client.py", CLIENT),
    ):
        (tmp / name).write_text(source)
    errors: dict[str, int] = {"pit": 0, "bare": 0}

    def measure(side: str, script: str) -> float:
        folder = tmp / side
        folder.mkdir(exist_ok=True)
        server = subprocess.Popen(
            [PYTHON, str(tmp / script), str(folder)], env=env, stdout=subprocess.PIPE, text=True
        )
        try:
            assert server.stdout is not None
            socket_path = server.stdout.readline().strip()
            result = subprocess.run(
                [PYTHON, str(tmp / "client.py"), socket_path, str(total), str(CLIENTS)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
        finally:
            server.kill()
            server.wait()
        figures = json.loads(result.stdout)
        errors[side] += figures["errors"]
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
        f"{ratio:.2f}x the bare server's throughput; errors pit {errors['pit']}, "
        f"bare {errors['bare']}"
    )
    report.check(
        "time / bare server's time (throughput >= 0.6x)",
        pit_time / bare_time,
        1 / TARGET,
        detail=f"throughput {ratio:.2f}x",
    )
    report.check("errors", errors["pit"] + errors["bare"], 0, unit="")
    time.sleep(0)
    cleanup(tmp, args)
    return report.finish(Path(args.json) if args.json else None)


if __name__ == "__main__":
    sys.exit(main())
