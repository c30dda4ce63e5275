"""The SDK broker, spoken to by a raw socket client exactly as sdk-wire-protocol.md describes."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from pit.actors import peers
from pit.actors.broker import Broker, BrokerHandle
from pit.clock import SystemClock
from pit.connectors import sql
from pit.spec.secrets import parse_secrets
from pit.store.rundir import AUDIT_FILE, CRASH_LOG

SECRETS = """
[global]
api_token = "global-token"
shared = "from-global"

[global.warehouse]
host = "db.example.com"
password = "pa55word"

[global.ftp]
host = "127.0.0.1"
port = "1"
user = "u"
password = "ftp-pa55"

[etl]
shared = "from-project"
odbc = "Driver={ODBC Driver 18};Server=db;UID=sa;PWD=0dbc-pa55;"
refused_mssql = "sqlserver://sa:mssql-pa55@127.0.0.1:1/warehouse"
"""

pytestmark = pytest.mark.slow  # real sockets and real timeouts


def new_broker(tmp_path: Path) -> Broker:
    secrets, problems = parse_secrets(SECRETS, "secrets.toml")
    assert problems == []
    return Broker(
        run_id="run-1",
        project="etl",
        secrets=secrets,
        data_dir=tmp_path,
        workspace=tmp_path,
        audit_path=tmp_path / AUDIT_FILE,
        clock=SystemClock(),
        read_timeout=0.5,
    )


@pytest.fixture
def actor(tmp_path: Path) -> Broker:
    return new_broker(tmp_path)


@pytest.fixture
async def broker(actor: Broker) -> AsyncIterator[BrokerHandle]:
    """The broker, with this test process taken for its run's task `extract` (so the tests
    can be its client)."""
    with joined(os.getpgid(0), peers.Member("run-1", "extract")):
        async with trio.open_nursery() as nursery:
            yield await nursery.start(actor.run)
            nursery.cancel_scope.cancel()


@contextlib.contextmanager
def joined(group: int, member: peers.Member) -> Iterator[None]:
    peers.join(group, member)
    try:
        yield
    finally:
        peers.leave(group)


async def exchange(handle: BrokerHandle, payload: bytes) -> bytes:
    """One connection: write the request, half-close, read the answer to EOF."""
    stream = await trio.open_unix_socket(str(handle.socket_path))
    async with stream:
        await stream.send_all(payload)
        await stream.send_eof()
        chunks = []
        while chunk := await stream.receive_some(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def call(handle: BrokerHandle, method: str, **params: Any) -> dict[str, Any]:
    reply = await exchange(handle, json.dumps({"method": method, "params": params}).encode())
    answer: dict[str, Any] = json.loads(reply)
    assert set(answer) == {"result", "error"}
    return answer


async def test_a_plain_secret_comes_from_the_project_section_first(broker: BrokerHandle) -> None:
    assert await call(broker, "get_secret", key="shared") == {
        "result": "from-project",
        "error": None,
    }
    assert (await call(broker, "get_secret", key="api_token"))["result"] == "global-token"


async def test_a_structured_secret_is_a_json_object_string(broker: BrokerHandle) -> None:
    answer = await call(broker, "get_secret", key="warehouse")
    assert json.loads(answer["result"]) == {"host": "db.example.com", "password": "pa55word"}
    field = await call(broker, "get_secret_field", secret="warehouse", field="host")
    assert field == {"result": "db.example.com", "error": None}


async def test_missing_secrets_and_fields_name_what_was_searched(broker: BrokerHandle) -> None:
    missing = await call(broker, "get_secret", key="nope")
    assert missing["result"] is None
    assert "'nope'" in missing["error"]
    assert "[etl]" in missing["error"]
    assert "[global]" in missing["error"]
    no_field = await call(broker, "get_secret_field", secret="warehouse", field="port")
    assert "has no field 'port'" in no_field["error"]


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b'{"method": "get_secret", "params": {"key": ', "malformed JSON"),
        (b"[1, 2, 3]", "JSON object"),
        (b'{"params": {}}', "missing method"),
        (b'{"method": "get_secret", "params": {}}', "missing param 'key'"),
        (b'{"method": "get_secret", "params": {"key": 7}}', "must be a string"),
        (b'{"method": "explode", "params": {}}', "unknown method: explode"),
        (b"\xff\xfe", "malformed JSON"),
    ],
)
async def test_bad_requests_get_an_error_response(
    broker: BrokerHandle, payload: bytes, error: str
) -> None:
    answer = json.loads(await exchange(broker, payload))
    assert answer["result"] is None
    assert error in answer["error"]


async def test_a_request_over_one_mebibyte_is_refused(broker: BrokerHandle) -> None:
    big = json.dumps({"method": "get_secret", "params": {"key": "x" * (1 << 20)}}).encode()
    answer = json.loads(await exchange(broker, big))
    assert "larger than" in answer["error"]


async def test_a_silent_client_is_dropped_and_others_are_served(broker: BrokerHandle) -> None:
    silent = await trio.open_unix_socket(str(broker.socket_path))
    async with silent:
        assert (await call(broker, "get_secret", key="api_token"))["result"] == "global-token"
        with trio.fail_after(5):
            assert await silent.receive_some(100) == b""  # closed after the read timeout


async def test_many_concurrent_clients_are_all_answered(broker: BrokerHandle) -> None:
    answers: list[str] = []

    async def client() -> None:
        answers.append((await call(broker, "get_secret", key="shared"))["result"])

    async with trio.open_nursery() as nursery:
        for _ in range(200):
            nursery.start_soon(client)
    assert answers == ["from-project"] * 200


async def test_each_access_is_audited_without_its_value(
    broker: BrokerHandle, tmp_path: Path
) -> None:
    await call(broker, "get_secret", key="api_token", task="extract")
    await call(broker, "get_secret_field", secret="warehouse", field="password")
    lines = [json.loads(line) for line in (tmp_path / AUDIT_FILE).read_text().splitlines()]
    assert [(e["task"], e["secret"], e["outcome"]) for e in lines] == [
        ("extract", "api_token", "accessed"),
        ("extract", "warehouse.password", "accessed"),
    ]
    assert all(e["run_id"] == "run-1" and e["at"] for e in lines)
    assert "global-token" not in (tmp_path / AUDIT_FILE).read_text()
    assert "pa55word" not in (tmp_path / AUDIT_FILE).read_text()


async def test_the_socket_is_private_short_and_removed_at_the_end(tmp_path: Path) -> None:
    actor = Broker(
        run_id="r",
        project="etl",
        secrets=None,
        data_dir=tmp_path,
        workspace=tmp_path,
        audit_path=tmp_path / AUDIT_FILE,
        clock=SystemClock(),
    )
    with joined(os.getpgid(0), peers.Member("r", "t")):
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(actor.run)
            path = handle.socket_path
            assert len(str(path)) < 100
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
            answer = await call(handle, "get_secret", key="x")
            assert "no secrets file" in answer["error"]
            assert "--secrets" in answer["error"]
            nursery.cancel_scope.cancel()
    assert not path.parent.exists()


# --- nothing a client sends ends the broker -------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b'{"method": "get_secret", "params": {"key": ' + b"9" * 5000 + b"}}", "malformed JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper than"),
        (b'{"method": "get_secret", "params": {"key": ' + b"[" * 100_000, "nested deeper than"),
        (b'{"method": "\\ud800", "params": {}}', "unknown method"),
        (
            b'{"method": "load_data", "params": {"file": "f", "table": "t", "connection": "odbc",'
            b' "schema": 5}}',
            "param 'schema' must be a string",
        ),
    ],
)
async def test_a_hostile_request_is_an_error_and_the_broker_serves_on(
    broker: BrokerHandle, payload: bytes, error: str
) -> None:
    answer = json.loads(await exchange(broker, payload))
    assert answer["result"] is None
    assert error in answer["error"]
    assert (await call(broker, "get_secret", key="api_token"))["result"] == "global-token"


async def test_a_bug_answers_an_internal_error_masked_and_logged(
    actor: Broker, broker: BrokerHandle, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(request: object, asker: object) -> str:
        raise KeyError("pa55word")  # a bug whose message holds a secret

    actor._handlers["get_secret_field"] = broken
    with caplog.at_level(logging.ERROR, logger="pit.broker"):
        answer = await call(broker, "get_secret_field", secret="warehouse", field="password")
    assert answer == {"result": None, "error": "internal error: KeyError: '***'"}
    (record,) = [r for r in caplog.records if r.name == "pit.broker"]
    assert "Traceback" in record.getMessage()
    assert "in broken" in record.getMessage()
    assert "pa55word" not in record.getMessage()
    # ...and in the run's own log of pit bugs, which pit run's console never shows.
    crash_log = actor.audit_path.with_name(CRASH_LOG).read_text()
    assert "in broken" in crash_log
    assert "pa55word" not in crash_log
    assert (await call(broker, "get_secret", key="api_token"))["result"] == "global-token"


async def test_a_bug_in_one_connection_does_not_reach_its_siblings(
    actor: Broker, broker: BrokerHandle
) -> None:
    async def broken(request: object, asker: object) -> str:
        await trio.sleep(0.01)
        raise RuntimeError("boom")

    actor._handlers["ftp_move"] = broken
    answers: list[dict[str, Any]] = []

    async def client(method: str, params: dict[str, str]) -> None:
        answers.append(await call(broker, method, **params))

    async with trio.open_nursery() as nursery:
        for n in range(20):
            if n % 2:
                nursery.start_soon(client, "ftp_move", {})
            else:
                nursery.start_soon(client, "get_secret", {"key": "shared"})
    assert sorted(a["error"] or a["result"] for a in answers) == sorted(
        ["from-project"] * 10 + ["internal error: RuntimeError: boom"] * 10
    )


# --- framing: one JSON value, with or without a half-close ----------------------------------


async def ask_without_half_close(handle: BrokerHandle, payload: bytes) -> bytes:
    """The original broker's clients: write the request, read the answer to EOF, never
    half-close."""
    stream = await trio.open_unix_socket(str(handle.socket_path))
    async with stream:
        await stream.send_all(payload)
        chunks = []
        with trio.fail_after(2):
            while chunk := await stream.receive_some(65536):
                chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"method": "get_secret", "params": {"key": "api_token"}}',
        b'  {"method":"get_secret","params":{"key":"api_token","x":"} ] \\" {"}}\n',
    ],
)
async def test_a_request_is_answered_without_a_half_close(
    broker: BrokerHandle, payload: bytes
) -> None:
    answer = json.loads(await ask_without_half_close(broker, payload))
    assert answer == {"result": "global-token", "error": None}


async def test_a_request_sent_in_pieces_is_answered_when_whole(broker: BrokerHandle) -> None:
    payload = b'{"method": "get_secret", "params": {"key": "api_\\u0074oken"}}'
    stream = await trio.open_unix_socket(str(broker.socket_path))
    async with stream:
        for byte in payload:
            await stream.send_all(bytes([byte]))
        with trio.fail_after(2):
            answer = json.loads(await stream.receive_some(65536))
    assert answer == {"result": "global-token", "error": None}


async def test_an_unfinished_request_times_out_with_an_error(broker: BrokerHandle) -> None:
    answer = json.loads(await ask_without_half_close(broker, b'{"method": "get_se'))
    assert answer["error"] == "timed out waiting for the request"


# --- params are checked before anything is connected ----------------------------------------


@pytest.mark.parametrize(
    ("method", "params", "error"),
    [
        ("ftp_download", {"secret": "ftp"}, "give remote_path, or directory"),
        ("ftp_download", {"secret": "ftp", "remote_path": "/"}, "not a plain file name"),
        ("ftp_upload", {"secret": "ftp", "local_name": "a.csv"}, "missing param 'remote_path'"),
        ("ftp_upload", {"secret": "ftp", "remote_path": "/x"}, "missing param 'local_name'"),
        ("ftp_move", {"secret": "ftp", "src": "/a"}, "missing param 'dst'"),
        ("ftp_move", {"secret": "ftp", "src": "/a", "dst": ""}, "param 'dst' is empty"),
        ("ftp_list", {"secret": "ftp"}, "missing param 'directory'"),
    ],
)
async def test_ftp_params_are_checked_before_connecting(
    broker: BrokerHandle, tmp_path: Path, method: str, params: dict[str, str], error: str
) -> None:
    (tmp_path / "a.csv").write_text("x\n")
    answer = await call(broker, method, **params)
    assert error in answer["error"]
    assert "refused" not in answer["error"]


# --- secrets do not leak through error messages ---------------------------------------------


async def test_an_unparsable_connection_secret_is_named_not_shown(broker: BrokerHandle) -> None:
    answer = await call(broker, "load_data", file="f", table="t", connection="odbc")
    assert "connection secret 'odbc'" in answer["error"]
    assert "0dbc-pa55" not in answer["error"]
    assert "PWD" not in answer["error"]


async def test_a_refused_sql_server_says_why_without_the_password(
    broker: BrokerHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql, "_LOGIN_TIMEOUT", 1)  # python-tds retries until its login timeout
    (tmp_path / "f.parquet").write_bytes(b"")
    answer = await call(broker, "load_data", file="f", table="t", connection="refused_mssql")
    assert "'warehouse' on 127.0.0.1:1" in answer["error"]
    assert "Connection refused" in answer["error"]
    assert "mssql-pa55" not in answer["error"]


# --- who asked ---------------------------------------------------------------------------------

CLIENT = """
import json, os, socket, sys
path, key, claim, setsid = sys.argv[1:]
sys.stdin.readline()  # the test has placed this process
if setsid == "yes" and os.fork():  # the child, in a session of its own, asks
    os.wait()
    sys.exit(0)
if setsid == "yes":
    os.setsid()
connection = socket.socket(socket.AF_UNIX)
connection.connect(path)
request = {"method": "get_secret", "params": {"key": key, "task": claim}}
connection.sendall(json.dumps(request).encode())
connection.shutdown(socket.SHUT_WR)
print(connection.recv(65536).decode())
"""


async def ask_from_process(
    handle: BrokerHandle,
    *,
    key: str = "api_token",
    claim: str = "extract",
    member: peers.Member | None = None,
    env: dict[str, str] | None = None,
    setsid: bool = False,
) -> dict[str, Any]:
    """Ask for `key` from a process of a session of its own: the group of `member`'s task
    (none: no task's group); with `setsid`, from its child in yet another session."""
    argv = [sys.executable, "-c", CLIENT, str(handle.socket_path), key, claim]
    argv.append("yes" if setsid else "no")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PIT_")}
    client = await trio.lowlevel.open_process(
        argv,
        env={**environment, **(env or {})},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert client.stdin is not None
    assert client.stdout is not None
    with contextlib.ExitStack() as stack, trio.fail_after(20):
        if member is not None:
            stack.enter_context(joined(client.pid, member))
        await client.stdin.send_all(b"go\n")
        output = b""
        while chunk := await client.stdout.receive_some():
            output += chunk
        await client.wait()
    stdout = output
    answer: dict[str, Any] = json.loads(stdout)
    return answer


def audit(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / AUDIT_FILE).read_text().splitlines()]


async def test_the_audit_names_the_task_found_never_the_claim(
    broker: BrokerHandle, tmp_path: Path
) -> None:
    load = peers.Member("run-1", "load")
    assert (await ask_from_process(broker, member=load, claim="extract"))["error"] is None
    assert (await ask_from_process(broker, member=load, claim="load"))["error"] is None
    assert [(e["task"], e["found_by"], e.get("claimed_task")) for e in audit(tmp_path)] == [
        ("load", "process group", "extract"),
        ("load", "process group", None),
    ]


async def test_a_process_that_left_its_task_group_is_found_by_its_parent_chain(
    broker: BrokerHandle, tmp_path: Path
) -> None:
    load = peers.Member("run-1", "load")
    answer = await ask_from_process(broker, member=load, setsid=True)
    assert answer == {"result": "global-token", "error": None}
    assert [(e["task"], e["found_by"]) for e in audit(tmp_path)] == [("load", "process group")]


async def test_a_process_of_no_task_is_refused_and_audited(
    broker: BrokerHandle, tmp_path: Path
) -> None:
    answer = await ask_from_process(broker, claim="extract")
    assert answer["result"] is None
    assert "refused: the asking process is no task of this run" in answer["error"]
    other_run = peers.Member("run-2", "extract")
    answer = await ask_from_process(broker, member=other_run, key="shared")
    assert "refused" in answer["error"]
    assert [
        (e["task"], e["secret"], e["outcome"], e["reason"], e.get("claimed_task"))
        for e in audit(tmp_path)
    ] == [
        (None, "api_token", "refused", "no task of this run", "extract"),
        (None, "shared", "refused", "no task of this run", "extract"),
    ]


async def test_an_adopted_escapee_is_known_by_its_run_marker_while_its_task_runs(
    broker: BrokerHandle, tmp_path: Path
) -> None:
    # A child of pit outside every task group: what a task's double-forked daemon becomes
    # once pit, the subreaper, adopts it. Its environment says which run's task it was; that
    # counts only while pit runs that task (a group of it is joined here).
    marked = {"PIT_RUN_ID": "run-1", "PIT_TASK_NAME": "load"}
    with joined(2**22 + 12345, peers.Member("run-1", "load")):  # the task's own group
        assert (await ask_from_process(broker, env=marked))["result"] == "global-token"
        other_run = {"PIT_RUN_ID": "run-2", "PIT_TASK_NAME": "load"}
        assert "refused" in (await ask_from_process(broker, env=other_run))["error"]
        made_up = {"PIT_RUN_ID": "run-1", "PIT_TASK_NAME": "ghost"}
        assert "refused" in (await ask_from_process(broker, env=made_up))["error"]
    assert "refused" in (await ask_from_process(broker, env=marked))["error"]  # its task ended
    assert [(e["task"], e["found_by"], e["outcome"]) for e in audit(tmp_path)] == [
        ("load", "marker", "accessed"),
        (None, None, "refused"),
        (None, None, "refused"),
        (None, None, "refused"),
    ]


async def test_a_task_reads_only_the_secrets_its_list_names(tmp_path: Path) -> None:
    actor = attrs.evolve(new_broker(tmp_path), readable={"extract": frozenset({"warehouse"})})
    async with trio.open_nursery() as nursery:
        with joined(os.getpgid(0), peers.Member("run-1", "extract")):
            handle = await nursery.start(actor.run)
            allowed = await call(handle, "get_secret_field", secret="warehouse", field="host")
            refused = await call(handle, "get_secret", key="api_token")
            ftp = await call(handle, "ftp_list", secret="ftp", directory="/")
        nursery.cancel_scope.cancel()
    assert allowed == {"result": "db.example.com", "error": None}
    assert refused["error"] == (
        "get_secret: refused: task 'extract' may not read secret 'api_token'"
        " (its secrets list: warehouse); add it to the list in pit.toml"
    )
    assert "refused" in ftp["error"]
    assert [(e["secret"], e["outcome"]) for e in audit(tmp_path)] == [
        ("warehouse.host", "accessed"),
        ("api_token", "refused"),
        ("ftp", "refused"),
    ]
