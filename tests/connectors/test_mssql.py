"""SQL Server, for real: only where `PIT_TEST_MSSQL_URL` names one (no SQL Server can run on
pit's own machines; see DECISIONS.md), e.g. `sqlserver://sa:Secret-123@127.0.0.1:1433/master`.
Each test works in tables of its own and drops them."""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
import trio

from pit.connectors.loader import load_parquet
from pit.connectors.sql import Database, open_blocking
from pit.connectors.target import ConnectorError, Target, parse_target
from pit.spec.dag import LoadMode

from .databases import fetch_all, run_script, write_parquet

URL = os.environ.get("PIT_TEST_MSSQL_URL", "")
pytestmark = pytest.mark.skipif(
    not URL, reason="set PIT_TEST_MSSQL_URL=sqlserver://user:password@host:port/db to run"
)


@pytest.fixture
def mssql() -> Target:
    return parse_target(URL, Path())


@pytest.fixture
def table(mssql: Target) -> Iterator[str]:
    """A table name of this test's own, dropped afterwards."""
    name = f"pit_test_{uuid.uuid4().hex[:12]}"
    yield name
    run_script(mssql, f"DROP TABLE IF EXISTS dbo.[{name}]")


async def load(target: Target, path: Path, table: str, mode: LoadMode) -> int:
    async with await Database.connect(target) as database:
        return await database.call(
            lambda connection: load_parquet(connection, path, table, schema=None, mode=mode)
        )


async def test_a_script_runs_batch_by_batch_on_go_lines(mssql: Target, table: str) -> None:
    async with await Database.connect(mssql) as database:
        await database.execute_script(
            f"CREATE TABLE dbo.[{table}] (x INT)\nGO\nINSERT dbo.[{table}] VALUES (1), (2)\nGO\n"
        )
    assert fetch_all(mssql, f"SELECT x FROM dbo.[{table}] ORDER BY x") == [(1,), (2,)]


async def test_every_type_reads_back_equal(mssql: Target, table: str, tmp_path: Path) -> None:
    at = dt.datetime(2024, 2, 29, 12, 34, 56, 789012, tzinfo=dt.UTC)
    data = pa.table(
        {
            "n": pa.array([1, 2], pa.int32()),
            "i8": pa.array([-128, None], pa.int8()),
            "i64": pa.array([2**63 - 1, None], pa.int64()),
            "f32": pa.array([1.5, None], pa.float32()),
            "f64": pa.array([1 / 3, None]),
            "flag": pa.array([True, None]),
            "text": pa.array(['ünïcödé, "quoted"\n', None]),
            "empty": pa.array(["", None]),
            "day": pa.array([dt.date(2024, 2, 29), None], pa.date32()),
            "at": pa.array([at.replace(tzinfo=None), None], pa.timestamp("us")),
            "at_utc": pa.array([at, None], pa.timestamp("us", tz="UTC")),
            "amount": pa.array([Decimal("12345678.1234"), None], pa.decimal128(12, 4)),
            "blob": pa.array([b"\x00\xff", None], pa.binary()),
        }
    )
    path = write_parquet(tmp_path / "types.parquet", data)
    assert await load(mssql, path, table, LoadMode.CREATE_OR_REPLACE) == 2
    names = ", ".join(f"[{name}]" for name in data.column_names)
    rows = fetch_all(mssql, f"SELECT {names} FROM dbo.[{table}] ORDER BY n")
    assert rows == [tuple(row.values()) for row in data.to_pylist()]


async def test_append_to_a_missing_table_is_an_error(
    mssql: Target, table: str, tmp_path: Path
) -> None:
    path = write_parquet(tmp_path / "new.parquet", pa.table({"id": [1]}))
    with pytest.raises(ConnectorError, match=f"table dbo.{table} does not exist"):
        await load(mssql, path, table, LoadMode.APPEND)


async def test_a_load_failing_in_its_last_batch_keeps_the_previous_rows(
    mssql: Target, table: str, tmp_path: Path
) -> None:
    run_script(
        mssql,
        f"CREATE TABLE dbo.[{table}] (id INT PRIMARY KEY, amount INT NOT NULL CHECK (amount >= 0))"
        f"\nGO\nINSERT dbo.[{table}] VALUES (1, 10), (2, 20)",
    )
    amounts = [5] * 29_999 + [-1]  # the very last row breaks the CHECK constraint
    data = pa.table({"id": range(100, 30_100), "amount": amounts})
    path = write_parquet(tmp_path / "bad.parquet", data, row_group_size=10_000)
    with pytest.raises(ConnectorError, match="left as it was"):
        await load(mssql, path, table, LoadMode.TRUNCATE_AND_LOAD)
    assert fetch_all(mssql, f"SELECT id, amount FROM dbo.[{table}] ORDER BY id") == [
        (1, 10),
        (2, 20),
    ]


@pytest.mark.slow
async def test_cancelling_a_query_interrupts_it_in_the_database(mssql: Target) -> None:
    async with await Database.connect(mssql) as database:
        started = time.monotonic()
        with trio.move_on_after(0.5):
            await database.execute_script("WAITFOR DELAY '00:00:30'")
        assert time.monotonic() - started < 10.0
        await database.execute_script("SELECT 1")


def test_the_default_schema_is_dbo(mssql: Target, table: str, tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "new.parquet", pa.table({"id": [1, 2]}))
    connection = open_blocking(mssql)
    try:
        loaded = load_parquet(connection, path, table, schema=None, mode=LoadMode.CREATE_OR_REPLACE)
    finally:
        connection.close()
    assert loaded == 2
    assert fetch_all(mssql, f"SELECT count(*) FROM dbo.[{table}]") == [(2,)]
