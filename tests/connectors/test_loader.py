"""The bulk loader against real SQLite, DuckDB and PostgreSQL databases: each mode, every type
back as it went in, clear errors, and nothing lost when a load fails or is cancelled."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import trio

from pit.connectors.loader import load_parquet, record_batches
from pit.connectors.sql import Database
from pit.connectors.target import ConnectorError, Dialect, Target
from pit.spec.dag import LoadMode

from .databases import fetch_all, run_script, write_parquet

UTC = dt.UTC


async def load(
    target: Target,
    path: Path,
    table: str = "sales",
    mode: LoadMode = LoadMode.APPEND,
    schema: str | None = None,
) -> int:
    """What a load task does: the loader in a worker thread of a `Database`."""
    async with await Database.connect(target) as database:
        return await database.call(
            lambda connection: load_parquet(connection, path, table, schema=schema, mode=mode)
        )


SALES_DDL = """
CREATE TABLE sales (
    id INTEGER PRIMARY KEY,
    name VARCHAR(20),
    amount INTEGER NOT NULL CHECK (amount >= 0)
);
INSERT INTO sales VALUES (1, 'old', 10), (2, 'old', 20), (3, 'old', 30);
"""
OLD_SALES = [(1, "old", 10), (2, "old", 20), (3, "old", 30)]
ALL_SALES = "SELECT id, name, amount FROM sales ORDER BY id"


def sales(ids: range, *, amount: int = 5, name: str = "new") -> pa.Table:
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "name": [name] * len(ids),
            "amount": pa.array([amount] * len(ids), pa.int64()),
        }
    )


# --- modes ------------------------------------------------------------------------------------


async def test_append_adds_the_files_rows(target: Target, tmp_path: Path) -> None:
    run_script(target, SALES_DDL)
    path = write_parquet(tmp_path / "new.parquet", sales(range(10, 13)))
    assert await load(target, path) == 3
    assert fetch_all(target, ALL_SALES) == [*OLD_SALES, *((i, "new", 5) for i in range(10, 13))]


async def test_truncate_and_load_replaces_the_rows(target: Target, tmp_path: Path) -> None:
    run_script(target, SALES_DDL)
    path = write_parquet(tmp_path / "new.parquet", sales(range(1, 3), amount=7))
    assert await load(target, path, mode=LoadMode.TRUNCATE_AND_LOAD) == 2
    assert fetch_all(target, ALL_SALES) == [(1, "new", 7), (2, "new", 7)]


async def test_create_or_replace_creates_a_missing_table(target: Target, tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "new.parquet", sales(range(5)))
    assert await load(target, path, "fresh", LoadMode.CREATE_OR_REPLACE) == 5
    assert fetch_all(target, "SELECT id, name, amount FROM fresh ORDER BY id") == [
        (i, "new", 5) for i in range(5)
    ]


async def test_create_or_replace_replaces_a_table_of_another_shape(
    target: Target, tmp_path: Path
) -> None:
    run_script(target, SALES_DDL)
    path = write_parquet(tmp_path / "other.parquet", pa.table({"code": ["x", "y"]}))
    assert await load(target, path, mode=LoadMode.CREATE_OR_REPLACE) == 2
    assert fetch_all(target, "SELECT * FROM sales ORDER BY code") == [("x",), ("y",)]


async def test_an_empty_file_loads_no_rows(target: Target, tmp_path: Path) -> None:
    run_script(target, SALES_DDL)
    path = write_parquet(tmp_path / "empty.parquet", sales(range(0)))
    assert await load(target, path, mode=LoadMode.TRUNCATE_AND_LOAD) == 0
    assert fetch_all(target, ALL_SALES) == []
    assert await load(target, path, "created", LoadMode.CREATE_OR_REPLACE) == 0
    assert fetch_all(target, "SELECT count(*) FROM created") == [(0,)]


async def test_columns_match_by_name_in_any_order_and_case(target: Target, tmp_path: Path) -> None:
    run_script(
        target,
        'CREATE TABLE sales ("ID" INTEGER, "Name" VARCHAR(20), note VARCHAR(10) DEFAULT \'none\')',
    )
    path = write_parquet(tmp_path / "new.parquet", pa.table({"name": ["a"], "id": [1]}))
    assert await load(target, path) == 1
    assert fetch_all(target, 'SELECT "ID", "Name", note FROM sales') == [(1, "a", "none")]


async def test_odd_schema_and_table_names_are_quoted(target: Target, tmp_path: Path) -> None:
    schema, table = 'odd "schema".x', 'we"ird table; DROP'
    quoted_schema = '"' + schema.replace('"', '""') + '"'
    quoted_table = '"' + table.replace('"', '""') + '"'
    # SQLite's schemas are attached databases, which last as long as their connection.
    make_schema = (
        f"ATTACH DATABASE '{tmp_path / 'other.sqlite'}' AS {quoted_schema}"
        if target.dialect is Dialect.SQLITE
        else f"CREATE SCHEMA {quoted_schema}"
    )
    path = write_parquet(tmp_path / "new.parquet", sales(range(2)))
    async with await Database.connect(target) as database:
        await database.execute_script(make_schema)
        for mode in (LoadMode.CREATE_OR_REPLACE, LoadMode.APPEND):
            await database.call(
                lambda c, mode=mode: load_parquet(c, path, table, schema=schema, mode=mode)
            )
        count = await database.call(
            lambda c: list(
                c.query_batches(f"SELECT count(*) AS n FROM {quoted_schema}.{quoted_table}")
            )
        )
    assert count[0].to_pylist() == [{"n": 4}]


# --- types ------------------------------------------------------------------------------------

EVERY_TYPE = pa.table(
    {
        "n": pa.array([1, 2, 3], pa.int32()),
        "i8": pa.array([-128, 127, None], pa.int8()),
        "i16": pa.array([-32768, 32767, None], pa.int16()),
        "i32": pa.array([-(2**31), 2**31 - 1, None], pa.int32()),
        "i64": pa.array([-(2**63), 2**63 - 1, None], pa.int64()),
        "u32": pa.array([0, 2**32 - 1, None], pa.uint32()),
        "f32": pa.array([1.5, -0.25, None], pa.float32()),
        "f64": pa.array([1 / 3, float("-inf"), None], pa.float64()),
        "flag": pa.array([True, False, None]),
        "text": pa.array(['comma, "quotes"\nand a newline', "", None]),  # "" is not NULL
        "big_text": pa.array(["ünïcödé ✓", "\\N", None], pa.large_string()),
        "category": pa.array(["red", "blue", None]).dictionary_encode(),
        "day": pa.array([dt.date(2024, 2, 29), dt.date(1, 1, 1), None], pa.date32()),
        "clock": pa.array([dt.time(23, 59, 59, 999999), dt.time(0), None], pa.time64("us")),
        "at": pa.array(  # naive on purpose: a timestamp without a time zone
            [dt.datetime(2024, 2, 29, 12, 34, 56, 789012), dt.datetime(1970, 1, 1), None],  # noqa: DTZ001
            pa.timestamp("us"),
        ),
        "at_ns": pa.array([1_700_000_000_123_456_000, 0, None], pa.timestamp("ns")),
        "at_utc": pa.array(
            [dt.datetime(2024, 7, 1, 12, tzinfo=UTC), dt.datetime(2024, 1, 1, tzinfo=UTC), None],
            pa.timestamp("us", tz="UTC"),
        ),
        "at_berlin": pa.array(
            [dt.datetime(2024, 7, 1, 12, tzinfo=UTC), dt.datetime(2024, 1, 1, tzinfo=UTC), None],
            pa.timestamp("us", tz="Europe/Berlin"),
        ),
        "amount": pa.array(
            [Decimal("12345678.1234"), Decimal("-0.0001"), None], pa.decimal128(12, 4)
        ),
        "payload": pa.array([b"\x00\x01\xff", b"", None], pa.binary()),
    }
)

SQLITE_ROWS = [
    (
        1, -128, -32768, -(2**31), -(2**63), 0, 1.5, 1 / 3, 1, 'comma, "quotes"\nand a newline',
        "ünïcödé ✓", "red", "2024-02-29", "23:59:59.999999", "2024-02-29 12:34:56.789012",
        "2023-11-14 22:13:20.123456000", "2024-07-01 12:00:00.000000Z",
        "2024-07-01 12:00:00.000000Z", "12345678.1234", b"\x00\x01\xff",
    ),
    (
        2, 127, 32767, 2**31 - 1, 2**63 - 1, 2**32 - 1, -0.25, float("-inf"), 0, "", "\\N",
        "blue", "0001-01-01", "00:00:00.000000", "1970-01-01 00:00:00.000000",
        "1970-01-01 00:00:00.000000000", "2024-01-01 00:00:00.000000Z",
        "2024-01-01 00:00:00.000000Z", "-0.0001", b"",
    ),
    (3, *[None] * 19),
]  # fmt: skip
"""SQLite has no date, time or decimal types: ISO-8601 text (UTC for zoned timestamps)."""


def python_rows(table: pa.Table) -> list[tuple[Any, ...]]:
    return [tuple(row.values()) for row in table.to_pylist()]


@pytest.mark.parametrize("mode", [LoadMode.CREATE_OR_REPLACE, LoadMode.APPEND])
async def test_every_type_reads_back_equal(target: Target, tmp_path: Path, mode: LoadMode) -> None:
    path = write_parquet(tmp_path / "types.parquet", EVERY_TYPE)
    if mode is LoadMode.APPEND:  # into the table a first load created
        await load(target, path, "types", LoadMode.CREATE_OR_REPLACE)
        run_script(target, "DELETE FROM types")
    assert await load(target, path, "types", mode) == 3
    names = ", ".join(f'"{name}"' for name in EVERY_TYPE.column_names)
    rows = fetch_all(target, f"SELECT {names} FROM types ORDER BY n")
    # Zoned timestamps come back in the session's zone: == compares the instants.
    expected = SQLITE_ROWS if target.dialect is Dialect.SQLITE else python_rows(EVERY_TYPE)
    assert rows == expected


async def test_nan_and_infinities_load(target: Target, tmp_path: Path) -> None:
    values = [float("nan"), float("inf"), float("-inf")]
    path = write_parquet(tmp_path / "floats.parquet", pa.table({"x": values}))
    await load(target, path, "floats", LoadMode.CREATE_OR_REPLACE)
    loaded = [row[0] for row in fetch_all(target, "SELECT x FROM floats")]
    # SQLite stores NaN as NULL.
    nan = None if target.dialect is Dialect.SQLITE else "nan"
    assert sorted(map(str, loaded)) == sorted(map(str, [nan, *values[1:]]))


async def test_an_unsupported_type_names_the_column(target: Target, tmp_path: Path) -> None:
    run_script(target, SALES_DDL)
    table = pa.table({"id": [1], "tags": pa.array([[1, 2]], pa.list_(pa.int64()))})
    path = write_parquet(tmp_path / "nested.parquet", table)
    with pytest.raises(ConnectorError, match=r"column 'tags' of nested\.parquet has type list"):
        await load(target, path, mode=LoadMode.CREATE_OR_REPLACE)
    assert fetch_all(target, ALL_SALES) == OLD_SALES


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [LoadMode.APPEND, LoadMode.TRUNCATE_AND_LOAD])
async def test_loading_into_a_missing_table_is_an_error(
    target: Target, tmp_path: Path, mode: LoadMode
) -> None:
    path = write_parquet(tmp_path / "new.parquet", sales(range(3)))
    with pytest.raises(ConnectorError, match=r"table nowhere does not exist.*create_or_replace"):
        await load(target, path, "nowhere", mode)


async def test_a_missing_file_is_an_error(local_target: Target, tmp_path: Path) -> None:
    with pytest.raises(ConnectorError, match=r"absent\.parquet: no such file"):
        await load(local_target, tmp_path / "absent.parquet")


async def test_a_file_that_is_not_parquet_is_an_error(local_target: Target, tmp_path: Path) -> None:
    path = tmp_path / "text.parquet"
    path.write_text("id,name\n1,a\n")
    with pytest.raises(ConnectorError, match="not a readable Parquet file"):
        await load(local_target, path)


async def test_a_column_the_table_lacks_is_an_error(target: Target, tmp_path: Path) -> None:
    run_script(target, SALES_DDL)
    table = sales(range(10, 12)).append_column("colour", pa.array(["red", "blue"]))
    path = write_parquet(tmp_path / "wide.parquet", table)
    with pytest.raises(ConnectorError, match=r"column\(s\) 'colour' that table sales lacks"):
        await load(target, path)
    assert fetch_all(target, ALL_SALES) == OLD_SALES


def test_record_batches_never_span_row_groups(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "groups.parquet", sales(range(2500)), row_group_size=1000)
    with pq.ParquetFile(path) as parquet:
        assert [batch.num_rows for batch in record_batches(parquet)] == [1000, 1000, 500]


# --- nothing lost -----------------------------------------------------------------------------


def failing_in_last_batch(path: Path, last: pa.Table) -> Path:
    """Four row groups (so four batches) of good sales, `last` at the very end."""
    good = sales(range(100, 3100))
    write_parquet(path, pa.concat_tables([good, last.cast(good.schema)]), row_group_size=1000)
    assert pq.ParquetFile(path).num_row_groups == 4
    return path


@pytest.mark.parametrize("mode", [LoadMode.TRUNCATE_AND_LOAD, LoadMode.APPEND])
@pytest.mark.parametrize(
    "last",
    [
        pytest.param(sales(range(5000, 5001), amount=-1), id="check"),
        pytest.param(sales(range(100, 101)), id="primary-key"),
    ],
)
async def test_a_load_failing_in_its_last_batch_keeps_the_previous_rows(
    target: Target, tmp_path: Path, mode: LoadMode, last: pa.Table
) -> None:
    run_script(target, SALES_DDL)
    path = failing_in_last_batch(tmp_path / "bad.parquet", last)
    with pytest.raises(ConnectorError, match="failed, and the table was left as it was"):
        await load(target, path, mode=mode)
    assert fetch_all(target, ALL_SALES) == OLD_SALES


UNLOADABLE = {
    # A value the table create_or_replace made from the file's own schema still cannot take.
    Dialect.SQLITE: pa.array([2**64 - 1], pa.uint64()),  # beyond SQLite's 64-bit integers
    Dialect.DUCKDB: pa.array([10**13], pa.timestamp("s")),  # beyond DuckDB's timestamps
    Dialect.POSTGRES: pa.array(["NUL \x00 byte"]),  # PostgreSQL text cannot hold NUL
}


async def test_create_or_replace_failing_in_its_last_batch_keeps_the_old_table(
    target: Target, tmp_path: Path
) -> None:
    run_script(target, SALES_DDL)
    bad = UNLOADABLE[target.dialect]
    good = pa.array(range(3000), pa.int64()).cast(bad.type)
    table = pa.table({"id": range(3001), "value": pa.concat_arrays([good, bad])})
    path = write_parquet(tmp_path / "bad.parquet", table, row_group_size=1000)
    with pytest.raises(ConnectorError, match="failed, and the table was left as it was"):
        await load(target, path, mode=LoadMode.CREATE_OR_REPLACE)
    assert fetch_all(target, ALL_SALES) == OLD_SALES


@pytest.mark.slow
async def test_a_cancelled_load_keeps_the_previous_rows(target: Target, tmp_path: Path) -> None:
    run_script(target, SALES_DDL)
    path = write_parquet(tmp_path / "big.parquet", sales(range(100, 3_000_100)))
    async with await Database.connect(target) as database:
        started = time.monotonic()
        with trio.move_on_after(0.5) as scope:
            await database.call(
                lambda c: load_parquet(
                    c, path, "sales", schema=None, mode=LoadMode.TRUNCATE_AND_LOAD
                )
            )
        assert scope.cancelled_caught, "the load finished before it was cancelled"
        assert time.monotonic() - started < 10.0
        await database.execute_script("SELECT 1")
    assert fetch_all(target, ALL_SALES) == OLD_SALES


# --- memory -----------------------------------------------------------------------------------

MEASURE_LOAD = """
import json, sys, tracemalloc
from pathlib import Path
import pyarrow as pa
from pit.connectors.loader import load_parquet
from pit.connectors.sql import open_blocking
from pit.spec.dag import LoadMode
from pit.connectors.target import parse_target

def peak_rss():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmHWM:")) * 1024

small, big, url, workspace = sys.argv[1:]
connection = open_blocking(parse_target(url, Path(workspace)))
# Warm up on one row group: imports, the driver's buffers, Arrow's pools and threads.
load_parquet(connection, Path(small), "warm", schema=None, mode=LoadMode.CREATE_OR_REPLACE)
arrow, rss = pa.default_memory_pool().max_memory(), peak_rss()
rows = load_parquet(connection, Path(big), "big", schema=None, mode=LoadMode.CREATE_OR_REPLACE)
grew = {"arrow": pa.default_memory_pool().max_memory() - arrow, "rss": peak_rss() - rss}
# Python objects, traced apart (tracemalloc's records would swell the RSS above); one row
# group is enough to see whether they stay within one batch's worth.
tracemalloc.start()
load_parquet(connection, Path(small), "warm", schema=None, mode=LoadMode.CREATE_OR_REPLACE)
print(json.dumps({"rows": rows, "python": tracemalloc.get_traced_memory()[1], **grew}))
"""
"""Loads a file after a warm-up on one row group; prints how much more memory it took at
its peak in Arrow's pool and in resident memory; then the peak of Python objects."""


def bench_like(rows: int) -> pa.Table:
    """Six columns of mixed types, like bench/load.py's file."""
    ids = pa.array(range(rows), pa.int64())
    return pa.table(
        {
            "id": ids,
            "amount": pc.multiply(ids.cast(pa.float64()), 0.25),
            "label": pc.binary_join_element_wise("customer-", ids.cast(pa.string()), "-x"),
            "at": pc.add(pc.multiply(ids, 1_000_000), 1_704_067_200_000_000).cast(
                pa.timestamp("us")
            ),
            "flag": pc.equal(pc.bit_wise_and(ids, 1), 0),
            "qty": pa.array(range(rows), pa.int64()).cast(pa.int32()),
        }
    )


@pytest.mark.slow
def test_memory_stays_flat_however_large_the_file(target: Target, tmp_path: Path) -> None:
    """Loading 500,000 rows (five row groups) takes hardly more memory than loading one row
    group: far less than the whole file takes in memory (about 25 MB)."""
    big = write_parquet(tmp_path / "big.parquet", bench_like(500_000), row_group_size=100_000)
    one_group = write_parquet(tmp_path / "small.parquet", bench_like(100_000))
    in_memory = pq.read_table(big).nbytes
    url = {
        Dialect.SQLITE: "sqlite:///mem.sqlite",
        Dialect.DUCKDB: "duckdb:///mem.duckdb",
    }.get(target.dialect, target.url)
    done = subprocess.run(
        [sys.executable, "-c", MEASURE_LOAD, str(one_group), str(big), url, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    grew = json.loads(done.stdout)
    assert grew.pop("rows") == 500_000
    assert grew["arrow"] < in_memory / 4, grew
    assert grew["python"] < in_memory / 3, grew
    # Resident memory also holds what the allocators keep for reuse: a looser bound. DuckDB
    # keeps its database's pages in the process itself, so its RSS says nothing of the loader.
    if target.dialect is not Dialect.DUCKDB:
        assert grew["rss"] < in_memory, grew
