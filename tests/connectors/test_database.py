"""`Database`: scripts, Arrow batches, errors, and cancellation reaching the database itself."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path

import duckdb
import psycopg
import pyarrow as pa
import pytest
import trio

from pit.connectors import sql
from pit.connectors.sql import BATCH_ROWS, Database, _split_go, open_blocking
from pit.connectors.target import ConnectorError, Dialect, Target, parse_target

from .databases import fetch_all

HANG_GUARD = 10.0
"""Seconds a cancelled call may take to return: a guard against hangs, not a speed target."""

SCRIPT = """
CREATE TABLE t (x INTEGER, label VARCHAR(10));
INSERT INTO t VALUES (1, 'one');
INSERT INTO t VALUES (2, 'two'), (3, 'three');
UPDATE t SET label = 'ONE' WHERE x = 1;
"""

LONG_QUERIES = {
    # Each runs for minutes unless interrupted (a hang guard bounds the tests anyway).
    Dialect.SQLITE: (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000000000) "
        "SELECT count(*) FROM c"
    ),
    Dialect.DUCKDB: "SELECT sum(a.range * b.range) FROM range(1000000000) a, range(100000) b",
    Dialect.POSTGRES: "SELECT pg_sleep(30)",
}

MISSING_TABLE_ERRORS = {
    Dialect.SQLITE: sqlite3.OperationalError,
    Dialect.DUCKDB: duckdb.CatalogException,
    Dialect.POSTGRES: psycopg.errors.UndefinedTable,
}


def series_sql(dialect: Dialect, count: int) -> str:
    """A query of `count` rows: n (an integer) and its text."""
    match dialect:
        case Dialect.SQLITE:
            return (
                f"WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {count})"
                " SELECT n, 'row ' || n AS label FROM s"
            )
        case Dialect.DUCKDB:
            return f"SELECT range + 1 AS n, 'row ' || (range + 1) AS label FROM range({count})"
        case _:
            return f"SELECT n, 'row ' || n AS label FROM generate_series(1, {count}) AS n"


async def test_execute_script_runs_every_statement(target: Target) -> None:
    async with await Database.connect(target) as database:
        await database.execute_script(SCRIPT)
    assert fetch_all(target, "SELECT x, label FROM t ORDER BY x") == [
        (1, "ONE"),
        (2, "two"),
        (3, "three"),
    ]


async def test_execute_script_counts_sqlite_changes(tmp_path: Path) -> None:
    target = parse_target("sqlite:///count.sqlite", tmp_path)
    async with await Database.connect(target) as database:
        changed = await database.execute_script(SCRIPT)
    assert changed == 4  # every row the script inserted or updated


async def test_query_batches_streams_arrow_batches(target: Target) -> None:
    count = BATCH_ROWS * 2 + 10
    async with await Database.connect(target) as database:
        batches = await database.call(
            lambda connection: list(connection.query_batches(series_sql(target.dialect, count)))
        )
    assert len(batches) >= 3
    assert all(batch.num_rows <= BATCH_ROWS for batch in batches)
    table = pa.Table.from_batches(batches)
    assert table.column_names == ["n", "label"]
    assert pa.types.is_integer(table.schema.field("n").type)
    assert table.num_rows == count
    assert table.column("n").to_pylist()[-1] == count
    assert table.column("label").to_pylist()[:2] == ["row 1", "row 2"]


async def test_a_query_without_rows_still_gives_its_columns(target: Target) -> None:
    """A save of no rows must still write the query's columns, so a load downstream can make
    its table (types: the database's where it tells them, else text, as for all-null columns)."""
    query = f"SELECT * FROM ({series_sql(target.dialect, 3)}) AS s WHERE n > 10"
    async with await Database.connect(target) as database:
        batches = await database.call(lambda connection: list(connection.query_batches(query)))
    table = pa.Table.from_batches(batches)
    assert table.num_rows == 0
    assert table.column_names == ["n", "label"]


async def test_a_save_query_that_returns_nothing_is_a_connector_error(tmp_path: Path) -> None:
    target = parse_target("sqlite:///nothing.sqlite", tmp_path)
    async with await Database.connect(target) as database:
        with pytest.raises(ConnectorError, match="no result"):
            await database.call(
                lambda connection: list(connection.query_batches("CREATE TABLE x (a INTEGER)"))
            )


async def test_query_batches_of_nulls_first_reads_them_as_text(tmp_path: Path) -> None:
    target = parse_target("sqlite:///nulls.sqlite", tmp_path)
    async with await Database.connect(target) as database:
        batches = await database.call(
            lambda connection: list(connection.query_batches("SELECT NULL AS blank, 1 AS one"))
        )
    assert batches[0].schema.field("blank").type == pa.string()


async def test_a_failing_statement_raises_the_drivers_error(target: Target) -> None:
    async with await Database.connect(target) as database:
        with pytest.raises(MISSING_TABLE_ERRORS[target.dialect]):
            await database.execute_script("SELECT * FROM no_such_table")
        # The connection is still usable after a failed statement.
        await database.execute_script("CREATE TABLE after_error (x INTEGER)")


async def test_an_unreachable_database_is_a_connector_error_naming_it(tmp_path: Path) -> None:
    target = parse_target("sqlite:///no/such/folder/db.sqlite", tmp_path)
    with pytest.raises(ConnectorError, match=r"cannot connect to sqlite database .*db\.sqlite"):
        await Database.connect(target)


async def test_a_missing_postgres_database_is_a_connector_error(postgres_url: str) -> None:
    url = postgres_url.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(ConnectorError, match=re.escape("'no_such_database' on 127.0.0.1")):
        await Database.connect(parse_target(url, Path()))


async def test_a_refused_sql_server_connection_names_it_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Port 1 on the loopback refuses at once, so no SQL Server is needed to see the message;
    # python-tds retries a refused connection until its login timeout, so shorten it.
    monkeypatch.setattr(sql, "_LOGIN_TIMEOUT", 1)
    target = parse_target("sqlserver://loader:s3cret@127.0.0.1:1/warehouse", Path())
    with pytest.raises(ConnectorError, match=re.escape("'warehouse' on 127.0.0.1:1")) as caught:
        await Database.connect(target)
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    ("script", "batches"),
    [
        ("SELECT 1", ["SELECT 1"]),
        ("SELECT 1\nGO\nSELECT 2\n", ["SELECT 1", "SELECT 2"]),
        (
            "CREATE TABLE t (x INT)\n  go  \n\nGO\nINSERT t VALUES (1)",
            ["CREATE TABLE t (x INT)", "INSERT t VALUES (1)"],
        ),
        ("SELECT 'GO'\nSELECT 1 -- GO", ["SELECT 'GO'\nSELECT 1 -- GO"]),
        ("GO\n", []),
    ],
)
def test_t_sql_scripts_split_on_go_lines(script: str, batches: list[str]) -> None:
    assert _split_go(script) == batches


# --- cancellation -----------------------------------------------------------------------------


async def cancel_after(seconds: float, database: Database, sql: str) -> float:
    """Start `sql`, cancel it after `seconds`; return how long the call took to give up."""
    started = time.monotonic()
    with trio.move_on_after(seconds) as scope:
        await database.execute_script(sql)
    assert scope.cancelled_caught, "the long query finished before it was cancelled"
    return time.monotonic() - started


@pytest.mark.slow
async def test_cancelling_a_query_interrupts_it_in_the_database(target: Target) -> None:
    async with await Database.connect(target) as database:
        took = await cancel_after(0.5, database, LONG_QUERIES[target.dialect])
        assert took < HANG_GUARD
        # The same connection runs the next statement.
        await database.execute_script("CREATE TABLE after_cancel (x INTEGER)")
        await database.execute_script("INSERT INTO after_cancel VALUES (7)")
    assert fetch_all(target, "SELECT x FROM after_cancel") == [(7,)]


@pytest.mark.slow
async def test_a_cancelled_connection_closes_cleanly(local_target: Target) -> None:
    database = await Database.connect(local_target)
    await cancel_after(0.5, database, LONG_QUERIES[local_target.dialect])
    with trio.fail_after(HANG_GUARD):
        await database.aclose()


def backends_running(target: Target, text: str) -> list[tuple[int, str]]:
    """PostgreSQL backends (other than this one) running a query that contains `text`."""
    connection = open_blocking(target)
    try:
        rows = connection.raw.execute(
            "SELECT pid, state FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND state = 'active' AND position(%s in query) > 0",
            (text,),
        ).fetchall()
        return [tuple(row) for row in rows]
    finally:
        connection.close()


@pytest.mark.slow
async def test_cancelling_stops_the_postgres_backend(postgres_target: Target) -> None:
    async with await Database.connect(postgres_target) as database:
        async with trio.open_nursery() as nursery:

            async def long_query() -> None:
                with trio.move_on_after(1.0):
                    await database.execute_script("SELECT pg_sleep(30)")

            nursery.start_soon(long_query)
            await trio.sleep(0.5)
            running = await trio.to_thread.run_sync(backends_running, postgres_target, "pg_sleep")
            assert len(running) == 1, "the query never reached the server"
        assert await trio.to_thread.run_sync(backends_running, postgres_target, "pg_sleep") == []
        await database.execute_script("SELECT 1")


@pytest.mark.slow
async def test_cancelling_a_postgres_query_batches_call_ends_its_transaction(
    postgres_target: Target,
) -> None:
    async with await Database.connect(postgres_target) as database:
        started = time.monotonic()
        with trio.move_on_after(0.5):
            await database.call(
                lambda connection: list(connection.query_batches("SELECT pg_sleep(30)"))
            )
        assert time.monotonic() - started < HANG_GUARD
        assert await trio.to_thread.run_sync(backends_running, postgres_target, "pg_sleep") == []
        batches = await database.call(
            lambda connection: list(connection.query_batches("SELECT 42 AS answer"))
        )
    assert batches[0].to_pylist() == [{"answer": 42}]
