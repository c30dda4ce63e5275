"""The SDK's wire client against a fake broker: the bytes it sends, how it half-closes, how it
reads answers and errors (sdk-wire-protocol.md), and each broker function's params."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

import pit_sdk
from pit_sdk import _client

from .fakebroker import FakeBroker, failed, ok


def test_a_request_is_one_json_object_then_a_half_close(broker: FakeBroker) -> None:
    broker.reply(ok("s3cret"))

    assert pit_sdk.get_secret("claims_db") == "s3cret"

    exchange = broker.only_exchange()
    assert exchange.saw_eof, "the client must shutdown(SHUT_WR) before it reads the answer"
    request = json.loads(exchange.raw)  # the whole stream is one JSON value, nothing after it
    assert request == {"method": "get_secret", "params": {"key": "claims_db"}}
    assert list(request) == ["method", "params"]
    assert exchange.raw == json.dumps(request).encode()


def test_every_request_names_the_task_when_pit_set_it(
    broker: FakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIT_TASK_NAME", "extract")

    pit_sdk.get_secret_field("warehouse_db", "host")
    pit_sdk.load_data("claims", "target", "warehouse_db")

    first, second = (exchange.request for exchange in broker.exchanges)
    assert first["params"] == {"secret": "warehouse_db", "field": "host", "task": "extract"}
    assert second["params"]["task"] == "extract"


def test_one_connection_per_request(broker: FakeBroker) -> None:
    broker.answer = lambda raw: ok(json.loads(raw)["params"]["key"].upper())

    assert [pit_sdk.get_secret(key) for key in ("a", "b", "c")] == ["A", "B", "C"]

    assert [exchange.request["params"]["key"] for exchange in broker.exchanges] == ["a", "b", "c"]
    assert all(exchange.saw_eof for exchange in broker.exchanges)


def test_get_secret_field_sends_secret_and_field(broker: FakeBroker) -> None:
    broker.reply(ok("db.example.com"))

    assert pit_sdk.get_secret_field("warehouse_db", "host") == "db.example.com"

    assert broker.only_request() == {
        "method": "get_secret_field",
        "params": {"secret": "warehouse_db", "field": "host"},
    }


def test_a_structured_secret_comes_back_as_the_json_string_the_broker_sent(
    broker: FakeBroker,
) -> None:
    fields = json.dumps({"host": "db.example.com", "password": "pä55wörd"})
    broker.reply(ok(fields))

    value = pit_sdk.get_secret("warehouse_db")

    assert value == fields
    assert json.loads(value)["password"] == "pä55wörd"


@pytest.mark.parametrize("file", ["claims", "claims.parquet"])
def test_load_data_sends_the_parquet_file_name_and_the_defaults(
    broker: FakeBroker, file: str
) -> None:
    broker.reply(ok("50000 rows loaded"))

    assert pit_sdk.load_data(file, "claims_target", "warehouse_db") == "50000 rows loaded"

    assert broker.only_request() == {
        "method": "load_data",
        "params": {
            "file": "claims.parquet",
            "table": "claims_target",
            "connection": "warehouse_db",
            "schema": "dbo",
            "mode": "append",
        },
    }


def test_load_data_passes_schema_and_mode(broker: FakeBroker) -> None:
    pit_sdk.load_data("claims", "t", "db", "staging", "truncate_and_load")
    pit_sdk.load_data("claims", "t", "db", schema="raw", mode="create_or_replace")

    first, second = (exchange.request["params"] for exchange in broker.exchanges)
    assert (first["schema"], first["mode"]) == ("staging", "truncate_and_load")
    assert (second["schema"], second["mode"]) == ("raw", "create_or_replace")


@pytest.mark.parametrize("file", ["../claims", "/etc/passwd", "sub/claims.parquet", "..", ""])
def test_load_data_refuses_a_file_outside_the_data_dir_without_asking(
    broker: FakeBroker, file: str
) -> None:
    with pytest.raises(ValueError, match="bad data file name"):
        pit_sdk.load_data(file, "t", "db")

    assert broker.exchanges == []


@pytest.mark.parametrize(
    ("call_it", "problem"),
    [
        (lambda: pit_sdk.ftp_download("ftp", ""), r"ftp_download\(\): path is empty"),
        (lambda: pit_sdk.ftp_download("", "/in/a.csv"), r"ftp_download\(\): secret is empty"),
        (lambda: pit_sdk.ftp_download("ftp", "/in", pattern=""), "pattern is empty"),
        (lambda: pit_sdk.ftp_upload("ftp", "a.csv", ""), r"ftp_upload\(\): remote_path is empty"),
        (lambda: pit_sdk.ftp_upload("ftp", "", "/out/a.csv"), "local_name is empty"),
        (lambda: pit_sdk.ftp_move("ftp", "/in/a", ""), r"ftp_move\(\): dst is empty"),
        (lambda: pit_sdk.ftp_list("", "/in"), r"ftp_list\(\): secret is empty"),
    ],
)
def test_ftp_params_are_checked_before_the_broker_is_asked(
    broker: FakeBroker, call_it: Any, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        call_it()

    assert broker.exchanges == []


def test_an_ftp_param_of_the_wrong_type_is_a_type_error(broker: FakeBroker) -> None:
    with pytest.raises(TypeError, match=r"ftp_upload\(\): remote_path is a str, not PosixPath"):
        pit_sdk.ftp_upload("ftp", "a.csv", Path("/out/a.csv"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"ftp_download\(\): path is a str, not NoneType"):
        pit_sdk.ftp_download("ftp", None)  # type: ignore[arg-type]

    assert broker.exchanges == []


def test_ftp_params_are_checked_even_outside_a_pit_task() -> None:
    # No PIT_SOCKET: the mistake is named, not the missing broker.
    with pytest.raises(ValueError, match="remote_path is empty"):
        pit_sdk.ftp_upload("ftp", "a.csv", "")


def test_an_error_answer_raises_sdk_error(broker: FakeBroker) -> None:
    broker.reply(failed("secret 'nope' not found in [etl] or [global]"))

    with pytest.raises(RuntimeError) as raised:
        pit_sdk.get_secret("nope")

    assert str(raised.value) == "SDK error: secret 'nope' not found in [etl] or [global]"


def test_an_unknown_method_is_the_brokers_error(broker: FakeBroker) -> None:
    broker.answer = lambda raw: failed(f"unknown method: {json.loads(raw)['method']}")

    with pytest.raises(RuntimeError, match=r"^SDK error: unknown method: ftp_list$"):
        _client.call("ftp_list", {"secret": "ftp", "directory": "/in", "pattern": "*"})


def test_a_null_result_without_error_is_an_empty_string(broker: FakeBroker) -> None:
    broker.reply(b'{"result": null, "error": null}')

    assert pit_sdk.get_secret("empty") == ""


def test_an_empty_error_is_no_error(broker: FakeBroker) -> None:
    broker.reply(b'{"result": "value", "error": ""}')

    assert pit_sdk.get_secret("k") == "value"


def test_a_long_answer_is_read_to_eof(broker: FakeBroker) -> None:
    big = "x" * 3_000_000
    broker.reply(ok(big))

    assert pit_sdk.get_secret("big") == big


@pytest.mark.parametrize(
    ("answer", "complaint"),
    [
        (b"", "closed the connection without answering get_secret"),
        (b"not json", "not JSON"),
        (b'["result"]', "not a JSON object"),
        (b'{"result": 5, "error": null}', "int result"),
    ],
)
def test_a_broken_answer_is_a_clear_runtime_error(
    broker: FakeBroker, answer: bytes, complaint: str
) -> None:
    broker.reply(answer)

    with pytest.raises(RuntimeError, match=complaint) as raised:
        pit_sdk.get_secret("k")

    assert broker.address in str(raised.value)


def test_tcp_host_port(tcp_broker: FakeBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIT_TASK_NAME", "load")
    tcp_broker.reply(ok("12 rows loaded"))

    assert pit_sdk.load_data("claims", "t", "db") == "12 rows loaded"

    exchange = tcp_broker.only_exchange()
    assert exchange.saw_eof
    assert exchange.request["params"]["task"] == "load"


def test_tcp_localhost_name(tcp_broker: FakeBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    port = tcp_broker.address.rpartition(":")[2]
    monkeypatch.setenv("PIT_SOCKET", f"localhost:{port}")
    tcp_broker.reply(ok("v"))

    assert pit_sdk.get_secret("k") == "v"


def test_without_pit_socket_the_function_must_run_in_a_pit_task(broker: FakeBroker) -> None:
    # broker sets PIT_SOCKET; take it away again
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("PIT_SOCKET")
        with pytest.raises(RuntimeError, match=r"PIT_SOCKET is not set: get_secret\(\) must run"):
            pit_sdk.get_secret("k")
        with pytest.raises(RuntimeError, match="inside a pit task"):
            pit_sdk.load_data("claims", "t", "db")

    assert broker.exchanges == []


def test_a_missing_socket_is_named(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(short_tmp / "gone.sock")
    monkeypatch.setenv("PIT_SOCKET", path)

    with pytest.raises(RuntimeError, match="cannot reach the pit SDK broker") as raised:
        pit_sdk.get_secret("k")

    assert repr(path) in str(raised.value)
    assert isinstance(raised.value.__cause__, OSError)


def test_a_refused_tcp_port_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    monkeypatch.setenv("PIT_SOCKET", f"127.0.0.1:{port}")

    with pytest.raises(RuntimeError, match=f"'127.0.0.1:{port}'"):
        pit_sdk.get_secret("k")


@pytest.mark.parametrize(
    ("address", "tcp"),
    [
        ("127.0.0.1:5000", ("127.0.0.1", "5000")),
        ("localhost:1", ("localhost", "1")),
        ("[::1]:8080", ("[::1]", "8080")),
        ("/run/pit/sdk.sock", None),
        ("/tmp/a:b/sdk.sock", None),
        ("/tmp/sdk.sock:", None),
        (":5000", None),
        ("host:50O0", None),
    ],
)
def test_tcp_is_told_apart_by_a_trailing_colon_and_digits(
    address: str, tcp: tuple[str, str] | None
) -> None:
    found = _client._TCP_ADDRESS.fullmatch(address)

    assert (None if found is None else (found["host"], found["port"])) == tcp
