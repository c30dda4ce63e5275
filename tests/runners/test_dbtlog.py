"""dbt's JSON log made readable (`pit.runners.dbtlog`), on lines as dbt 1.11 writes them."""

from __future__ import annotations

import json
from typing import Any

from pit.runners.dbtlog import DbtLog


def event(kind: str, msg: str = "", level: str = "info", **data: Any) -> bytes:
    return json.dumps({"data": data, "info": {"name": kind, "level": level, "msg": msg}}).encode()


def readable(*lines: bytes) -> tuple[list[str], DbtLog]:
    log = DbtLog()
    shown = log.feed(b"\n".join(lines) + b"\n") + log.flush()
    return shown.decode().splitlines(), log


def test_models_tests_and_the_end_read_as_the_seed_shows_them() -> None:
    lines, log = readable(
        event("MainReportVersion", "Running with dbt=1.11.16"),
        event("AdapterRegistered", "Registered adapter: duckdb=1.11.1"),
        event(
            "LogModelResult",
            "1 of 1 OK created sql table model main.stg_orders",
            status="SELECT 1500",
            execution_time=2.53,
            node_info={"node_name": "stg_orders"},
        ),
        event("LogTestResult", name="not_null_orders_id", status="pass", execution_time=0.31),
        event(
            "LogTestResult",
            level="error",
            name="unique_orders_id",
            status="fail",
            num_failures=3,
            execution_time=0.2,
        ),
        event("LogFreshnessResult", source_name="raw", table_name="orders", status="pass"),
        event("LogFreshnessResult", source_name="raw", table_name="items", status="warn"),
        event("FinishedRunningStats", execution_time=15.71),
    )
    assert lines == [
        "Running with dbt=1.11.16",
        "OK stg_orders (2.5s, 1500 rows)",
        "PASS not_null_orders_id (0.3s)",
        "FAIL unique_orders_id (0.2s, 3 failures)",
        "FRESH raw.orders",
        "STALE raw.items",
        "Completed in 15.7s",
    ]
    assert len(log.raw) == 8


def test_a_failing_model_is_named_with_dbts_message() -> None:
    lines, log = readable(
        event(
            "LogModelResult",
            level="error",
            status="error",
            execution_time=0.08,
            node_info={"node_name": "bad"},
        ),
        event(
            "RunResultFailure",
            "\x1b[31mFailure in model bad (models/bad.sql)\x1b[0m",
            level="error",
            node_name="bad",
            resource_type="model",
        ),
        event(
            "RunResultError",
            level="error",
            msg="Runtime Error in model bad\n  Table no_such_table does not exist!",
        ),
    )
    assert lines == [
        "ERROR bad (0.1s)",
        "ERROR Runtime Error in model bad",
        "        Table no_such_table does not exist!",
    ]
    assert log.failed == ["model bad"]


def test_lines_that_are_not_dbts_json_pass_as_they_are_even_split_across_chunks() -> None:
    log = DbtLog()
    end = event("FinishedRunningStats", execution_time=1.0)
    shown = log.feed(b"plain text\n{not json}\n" + end[:20])
    shown += log.feed(end[20:] + b"\nlast")
    shown += log.flush()
    assert shown.decode().splitlines() == ["plain text", "{not json}", "Completed in 1.0s", "last"]
    assert len(log.take_raw().splitlines()) == 1
    assert log.take_raw() == b""


def test_warnings_and_errors_of_other_events_are_shown() -> None:
    lines, _ = readable(
        event("DeprecationWarning", "a deprecated config", level="warn"),
        event("SomethingFailed", "it broke", level="error"),
        event("Formatting", ""),
    )
    assert lines == ["WARN a deprecated config", "ERROR it broke"]
