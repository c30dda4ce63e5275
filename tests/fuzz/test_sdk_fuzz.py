"""Fuzz the SDK broker over its real Unix socket, and the masker over any chunking.

A real `Broker` serves in a thread of its own (`BrokerThread`); each case is one connection of
a plain blocking client (`exchange`): arbitrary bytes, arbitrary JSON (deep nesting, huge
integers, unicode, lone surrogates), request-shaped objects with every method and wrong types,
missing and extra params, sent in pieces, with or without a half-close. `fuzz_case` builds a
case from a `random.Random` (hypothesis drives it here, so a failure shrinks and replays;
`bench/fuzz_sdk.py` sends many more). After each case (`check`):

- the connection got one JSON object `{"result": ..., "error": ...}`, or was closed cleanly with
  no answer (a client that sent nothing); never a reset, never silence past `HANG_BOUND`;
- no answer is an `internal error` (a pit bug the broker caught);
- the broker is still up (no exception left it) and still serves: `get_secret` answers.

The masker's property: for any secrets and any output cut into any chunks, no credential value
is left in the masked output, and host and port stay readable.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import string
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pit.actors import peers
from pit.actors.broker import Broker
from pit.actors.masking import MIN_LENGTH, Masker
from pit.clock import SystemClock
from pit.spec.secrets import Secrets, parse_secrets
from pit.store.rundir import AUDIT_FILE

pytestmark = pytest.mark.slow  # a real socket, real read timeouts

READ_TIMEOUT = 0.1
"""The fuzzed broker's read timeout: an unfinished request costs this much."""
HANG_BOUND = 5.0
"""Seconds a connection may stay unanswered and open (a loaded machine's margin)."""

SECRETS = """
[global]
api_token = "global-token"
db = "sqlite:///fuzz.db"
pg = "postgresql://u:pg-pa55@127.0.0.1:1/db"
odbc = "Driver={ODBC};Server=db;PWD=0dbc-pa55;"
bad = "foo://x"

[global.warehouse]
host = "db.example.com"
port = "5432"
password = "pa55word"

[global.ftp]
host = "127.0.0.1"
port = "1"
user = "u"
password = "ftp-pa55"
"""

METHODS = {
    "get_secret": ["key"],
    "get_secret_field": ["secret", "field"],
    "load_data": ["file", "table", "connection", "schema", "mode"],
    "ftp_list": ["secret", "directory", "pattern"],
    "ftp_download": ["secret", "remote_path", "directory", "pattern"],
    "ftp_upload": ["secret", "local_name", "remote_path"],
    "ftp_move": ["secret", "src", "dst"],
}
"""Each method and the params it reads."""
PARAMS = [
    "key",
    "secret",
    "field",
    "file",
    "table",
    "connection",
    "schema",
    "mode",
    "directory",
    "pattern",
    "remote_path",
    "local_name",
    "src",
    "dst",
    "task",
]
SANE = [
    "api_token",
    "warehouse",
    "ftp",
    "db",
    "pg",
    "odbc",
    "bad",
    "host",
    "password",
    "f",
    "f.parquet",
    "t",
    "dbo",
    "main",
    "append",
    "truncate_and_load",
    "create_or_replace",
    "/in",
    "*.csv",
    "/in/a.csv",
    "..",
    "../x",
    "/",
    "",
    "a\0b",
    "é\u2028\U0001f600",
    "\ud800",
]


LIKELY = {
    "key": ["api_token", "warehouse", "db"],
    "secret": ["warehouse", "ftp", "api_token"],
    "field": ["host", "password", "port"],
    "file": ["f", "f.parquet"],
    "table": ["t", "fuzz_table", "main.t"],
    "connection": ["db", "pg", "odbc", "bad", "warehouse", "api_token"],
    "schema": ["dbo", "main", ""],
    "mode": ["append", "truncate_and_load", "create_or_replace"],
    "directory": ["/in", ""],
    "pattern": ["*.csv", "*"],
    "remote_path": ["/in/a.csv"],
    "local_name": ["f.parquet"],
    "src": ["/in/a.csv"],
    "dst": ["/archive/a.csv"],
}
"""Values that get a request past its checks, into the secrets, the loader, the FTP client."""


@attrs.frozen
class Case:
    chunks: tuple[bytes, ...]
    """Sent one after another, each by its own `sendall` (so the broker sees partial reads)."""
    half_close: bool


class Broken(AssertionError):
    """The broker broke the property: `kind` says how (`died`, `no answer`, `bad answer`,
    `internal error`, `hang`), the message the details."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


# --- cases ------------------------------------------------------------------------------------


def json_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, -1, 2**63, 10 ** rng.randrange(1, 400), rng.random() * 1e308])
    if kind in (3, 4, 5):
        return text(rng)
    if kind in (6, 7):
        return [json_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {text(rng): json_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def text(rng: random.Random, param: str = "") -> str:
    if param in LIKELY and rng.random() < 0.5:
        return rng.choice(LIKELY[param])
    if rng.random() < 0.6:
        return rng.choice(SANE)
    alphabet = string.printable + 'é€\u0000\u2028\U0001f600\ud800\\"'
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(12)))


def request(rng: random.Random) -> dict[str, Any]:
    """Mostly a method with its own params, sane or not, one of them dropped or of the wrong
    type now and then; sometimes any params at all."""
    method: Any = rng.choice(list(METHODS)) if rng.random() < 0.9 else json_value(rng)
    own = METHODS.get(method, []) if isinstance(method, str) else []
    names = own if rng.random() < 0.7 else rng.sample(PARAMS, 4)
    params: Any = {name: text(rng, name) for name in names if rng.random() < 0.9}
    if params and rng.random() < 0.3:
        params[rng.choice(list(params))] = json_value(rng)  # a wrong type, now and then
    if rng.random() < 0.2:
        params[text(rng)] = json_value(rng)  # an extra param
    if rng.random() < 0.05:
        params = json_value(rng)  # not an object
    shaped = {"method": method, "params": params}
    if rng.random() < 0.05:
        del shaped[rng.choice(["method", "params"])]
    return shaped


def hostile(rng: random.Random) -> bytes:
    depth = rng.choice([65, 1000, 100_000])
    digits = b"9" * rng.choice([4301, 5000, 100_000])
    return rng.choice(
        [
            b"[" * depth + b"]" * depth,
            b'{"method": "get_secret", "params": {"key": ' + b"[" * depth,
            b'{"method": "get_secret", "params": {"key": ' + digits + b"}}",
            digits,
            b'{"method": "get_secret", "params": {"key": "' + b"x" * (1 << 20) + b'"}}',
            b'{"method": "get_secret", "params": {"key": "\\ud800\\udfff\\u0000"}}',
            b'{"method": "' + b"\\\\" * 5000 + b'"}',
            b'"unterminated',
            b"\xff\xfe\x00",
            b"",
        ]
    )


def payload(rng: random.Random) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randbytes(rng.randrange(200))
    if kind == 1:
        return json.dumps(json_value(rng)).encode()
    if kind == 2:
        return hostile(rng)
    data = json.dumps(request(rng), ensure_ascii=rng.random() < 0.5).encode(errors="surrogatepass")
    if kind == 3 and data:  # a mutation: a flipped byte, a cut, trailing bytes
        cut = rng.randrange(len(data))
        data = rng.choice(
            [data[:cut], data[:cut] + bytes([rng.randrange(256)]) + data[cut + 1 :], data + b"\n"]
        )
    return data


def fuzz_case(rng: random.Random) -> Case:
    data = payload(rng)
    cuts = sorted(rng.randrange(len(data) + 1) for _ in range(rng.randrange(4)))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    return Case(chunks=tuple(c for c in chunks if c), half_close=rng.random() < 0.6)


# --- the broker under test -----------------------------------------------------------------------


class BrokerThread:
    """A real Broker in a thread running trio; `error` holds whatever ended it."""

    def __init__(self, folder: Path) -> None:
        secrets, problems = parse_secrets(SECRETS, "secrets.toml")
        assert problems == []
        write_parquet(folder / "f.parquet")
        self.broker = Broker(
            run_id="fuzz",
            project="fuzz",
            secrets=secrets,
            data_dir=folder,
            workspace=folder,
            audit_path=folder / AUDIT_FILE,
            clock=SystemClock(),
            read_timeout=READ_TIMEOUT,
        )
        # The fuzzer's requests come from this process: the broker takes it for a task of its run.
        peers.join(os.getpgid(0), peers.Member("fuzz", "fuzzer"))
        self.error: BaseException | None = None
        self.socket_path = ""
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._thread = threading.Thread(target=self._run, name="fuzzed-broker", daemon=True)
        self._thread.start()
        self._ready.wait(30)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self.error is None

    def wait_ended(self, timeout: float) -> bool:
        """Whether the broker has ended (or does within `timeout`): a dying trio run takes a
        moment to unwind."""
        self._thread.join(timeout)
        return not self.alive

    def stop(self) -> None:
        if self._thread.is_alive() and self._token is not None and self._scope is not None:
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
        self._thread.join(10)
        peers.leave(os.getpgid(0))

    def _run(self) -> None:
        async def serve() -> None:
            with trio.CancelScope() as self._scope:
                self._token = trio.lowlevel.current_trio_token()
                async with trio.open_nursery() as nursery:
                    handle = await nursery.start(self.broker.run)
                    self.socket_path = str(handle.socket_path)
                    self._ready.set()

        try:
            trio.run(serve)
        except BaseException as exc:  # what left the broker: the fuzz's finding
            self.error = exc
        finally:
            self._ready.set()


def write_parquet(path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": [1, 2], "name": ["a", "b"]}), path)


def exchange(socket_path: str, case: Case) -> bytes:
    """One connection: send the chunks, maybe half-close, read the answer to EOF."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(HANG_BOUND)
        try:
            client.connect(socket_path)
        except (ConnectionRefusedError, FileNotFoundError) as exc:
            raise Broken("no answer", f"the broker does not listen ({exc})") from None
        with contextlib.suppress(BrokenPipeError):  # answered (refused) before we finished
            for chunk in case.chunks:
                client.sendall(chunk)
            if case.half_close:
                client.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while chunk := client.recv(65536):
                answer += chunk
        except TimeoutError:
            raise Broken("hang", f"no answer and no close within {HANG_BOUND}s") from None
        except ConnectionResetError:
            raise Broken("no answer", f"connection reset after {answer[:200]!r}") from None
        return answer


def check(target: BrokerThread, case: Case) -> None:
    """Send `case`; raise Broken if the broker broke the property."""
    answer = exchange(target.socket_path, case)
    if answer:
        try:
            response = json.loads(answer)
        except ValueError:
            raise Broken("bad answer", f"not JSON: {answer[:200]!r}") from None
        if not isinstance(response, dict) or set(response) != {"result", "error"}:
            raise Broken("bad answer", f"not a response object: {answer[:200]!r}")
        if str(response["error"]).startswith("internal error"):
            raise Broken("internal error", str(response["error"]))
    if not target.alive:
        raise Broken("died", repr(target.error))
    probe = Case(
        chunks=(b'{"method": "get_secret", "params": {"key": "api_token"}}',), half_close=True
    )
    try:
        answer = exchange(target.socket_path, probe)
    except Broken as exc:
        raise Broken("died", f"the broker no longer serves get_secret: {exc}") from None
    if answer != b'{"result": "global-token", "error": null}':
        raise Broken("died", f"the broker no longer serves get_secret: {answer[:200]!r}")


@pytest.fixture(scope="module")
def broker_thread() -> Iterator[BrokerThread]:
    with tempfile.TemporaryDirectory(prefix="pit-fuzz-") as folder:
        target = BrokerThread(Path(folder))
        yield target
        target.stop()


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(rng=st.randoms(use_true_random=False))
def test_no_connection_breaks_the_broker(broker_thread: BrokerThread, rng: random.Random) -> None:
    check(broker_thread, fuzz_case(rng))


@pytest.mark.parametrize("index", range(10))
@pytest.mark.parametrize("half_close", [True, False])
def test_hostile_requests_in_pieces(
    broker_thread: BrokerThread, index: int, half_close: bool
) -> None:
    rng = random.Random(index)
    data = hostile(rng)
    pieces = tuple(data[i : i + 65_000] for i in range(0, len(data), 65_000))
    check(broker_thread, Case(chunks=pieces, half_close=half_close))


# --- the masker ----------------------------------------------------------------------------------

CREDENTIAL = st.text(alphabet=string.ascii_uppercase + '"\\é€', min_size=MIN_LENGTH, max_size=10)
"""Credentials share no character with hosts, ports, filler or the mask (`*`)."""
HOST = st.text(alphabet="ghijklmnopqrstvwxyz.", min_size=MIN_LENGTH, max_size=12)
PORT = st.integers(min_value=1000, max_value=65535).map(str)
FILLER = st.text(alphabet=" ,;=:\n", max_size=5)


@st.composite
def secrets_and_output(draw: st.DrawFn) -> tuple[Secrets, list[str], list[str], bytes]:
    """Secrets, their credential values, their host and port, and output that prints them all
    (credentials raw and JSON-escaped) between filler."""
    host, port = draw(HOST), draw(PORT)
    password, token, plain = draw(CREDENTIAL), draw(CREDENTIAL), draw(CREDENTIAL)
    url_password = draw(st.text(alphabet=string.ascii_uppercase, min_size=MIN_LENGTH, max_size=8))
    secrets = Secrets(
        sections={
            "global": {
                "plain": plain,
                "db": {
                    "host": host,
                    "port": port,
                    "db_password": password,
                    "url": f"postgresql://user:{url_password}@{host}:{port}/db",
                },
                "api": {"host": host, "API_Token": token},
            }
        }
    )
    credentials = [password, token, plain, url_password]
    shown = [*credentials, *(json.dumps(c)[1:-1] for c in credentials), host, port]
    pieces = draw(st.lists(st.sampled_from(shown), min_size=1, max_size=12))
    fillers = draw(st.lists(FILLER, min_size=len(pieces) + 1, max_size=len(pieces) + 1))
    output = fillers[0] + "".join(p + f for p, f in zip(pieces, fillers[1:], strict=True))
    printed = [p for p in pieces if p in (host, port)]
    return secrets, credentials, printed, output.encode()


@settings(max_examples=300, database=None)
@given(case=secrets_and_output(), cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_no_chunking_lets_a_credential_through_and_hosts_stay(
    case: tuple[Secrets, list[str], list[str], bytes], cuts: list[int]
) -> None:
    secrets, credentials, printed, output = case
    masker = Masker(secrets.values())
    masked, start = [], 0
    for cut in sorted(c % (len(output) + 1) for c in cuts):
        masked.append(masker.feed(output[start:cut]))
        start = cut
    masked += [masker.feed(output[start:]), masker.flush()]
    result = b"".join(masked)
    for credential in credentials:
        assert credential.encode() not in result
        assert json.dumps(credential)[1:-1].encode() not in result
    for visible in set(printed):
        assert result.count(visible.encode()) >= printed.count(visible)
