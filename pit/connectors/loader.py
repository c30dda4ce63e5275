"""The bulk loader: a Parquet file into a table, streamed record batch by record batch.

Memory stays flat however large the file: what the Parquet reader needs for one row group, and
one batch of it, at a time (bench/load.py: 5,000,000 rows take 15 MB more than 1,000,000). Per
database, the fastest way in that its driver offers:

- PostgreSQL: one `COPY ... FROM STDIN (FORMAT csv)`, each batch written as CSV by pyarrow;
- SQL Server: one bulk insert (python-tds `copy_to`) with typed columns;
- SQLite: `executemany` of each batch;
- DuckDB: `INSERT ... SELECT` from each batch, straight from Arrow.

**Nothing lost**: every mode runs in one transaction, so a load that fails halfway (a constraint,
a bad value, a cancelled run) leaves the table exactly as it was: its rows and, for
`create_or_replace`, its definition. A failed append adds nothing, so it can simply be retried.

Columns are matched by name (exactly, else case-insensitively when that is unambiguous); table
columns the file lacks get their defaults. `load_parquet` is blocking: `Database.call` runs it in
a worker thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pit.connectors.columns import FileColumn, TableName, file_columns
from pit.connectors.sql import BATCH_ROWS, BlockingConnection
from pit.connectors.target import ConnectorError, Dialect
from pit.connectors.writers import WRITERS, Writer
from pit.spec.dag import LoadMode

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

_READ_BUFFER = 1 << 20
"""Bytes of a column chunk the Parquet reader reads at a time (0, pyarrow's default, reads each
column chunk whole: a row group of a million rows would then be in memory at once)."""

DEFAULT_SCHEMA = {Dialect.MSSQL: "dbo"}
"""The schema used when none is given; other databases use their own default (search_path,
main)."""


def load_parquet(
    connection: BlockingConnection,
    path: Path,
    table: str,
    *,
    schema: str | None,
    mode: LoadMode,
) -> int:
    """Load the Parquet file at `path` into `schema.table` (`schema` None: the database's
    default, `dbo` on SQL Server); return the number of rows loaded. Raises ConnectorError for a
    missing or unreadable file, a missing table (append, truncate_and_load), a column the table
    lacks, a type pit cannot load, and when the database refuses the data (the table is then as
    it was)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    dialect = connection.dialect
    schema = schema if schema is not None else DEFAULT_SCHEMA.get(dialect)
    for what, given in (("schema", schema), ("table", table)):
        if given is not None and (not given or "\x00" in given):
            raise ConnectorError(f"the {what} name {given!r} is empty or holds a NUL character")
    name = TableName(schema=schema, table=table)
    if not path.is_file():
        raise ConnectorError(f"cannot load {path}: no such file (did an earlier task write it?)")
    try:
        parquet = pq.ParquetFile(path, buffer_size=_READ_BUFFER, pre_buffer=False)
    except (pa.ArrowException, OSError) as exc:
        raise ConnectorError(f"cannot load {path}: not a readable Parquet file ({exc})") from exc
    with parquet:
        columns = file_columns(parquet.schema_arrow, dialect, path)
        writer = WRITERS[dialect](connection.raw, name)
        try:
            with writer.transaction():
                return _load(writer, parquet, columns, name, mode, path)
        except _load_errors(dialect) as exc:
            raise ConnectorError(
                f"loading {path.name} into {dialect.value} table {name} failed, and the table "
                f"was left as it was: {_first_line(exc)}"
            ) from exc


def _load(
    writer: Writer,
    parquet: pq.ParquetFile,
    columns: list[FileColumn],
    name: TableName,
    mode: LoadMode,
    path: Path,
) -> int:
    if mode is LoadMode.CREATE_OR_REPLACE:
        writer.replace(columns)
        targets = [column.name for column in columns]
    else:
        existing = writer.existing_columns()
        if existing is None:
            raise ConnectorError(
                f"cannot {mode.value} {path.name}: table {name} does not exist; create it first "
                f"or load with mode {LoadMode.CREATE_OR_REPLACE.value!r}{writer.name_hint}"
            )
        targets = match_columns([column.name for column in columns], existing, name, path)
        if mode is LoadMode.TRUNCATE_AND_LOAD:
            writer.clear()
    return writer.insert(record_batches(parquet, writer.batch_rows), columns, targets)


def record_batches(parquet: pq.ParquetFile, rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """Batches of at most `rows` rows, never spanning row groups.

    Run in a trio worker thread (`Database.call`), it stops between batches once that call is
    cancelled: the database's own interrupt reaches only a statement that is running, and a load
    is many statements (SQLite's executemany resets its statement after every row, so an
    interrupt there is all but always lost). The exception unwinds the load's transaction.
    """
    import pyarrow as pa

    stop_if_cancelled = _cancellation_check()
    for group in range(parquet.num_row_groups):
        # mimalloc (Arrow's allocator here) keeps freed pages: hand them back once per row
        # group, or resident memory ends tens of MB above what the load really uses.
        pa.default_memory_pool().release_unused()
        for batch in parquet.iter_batches(batch_size=rows, row_groups=[group]):
            stop_if_cancelled()
            yield batch


def _cancellation_check() -> Callable[[], None]:
    """trio.from_thread.check_cancelled in a trio worker thread; else (a direct call, which
    nothing can cancel) a no-op."""
    import trio

    try:
        trio.from_thread.check_cancelled()
    except RuntimeError:  # not a thread trio.to_thread started: the one way to tell
        return lambda: None
    return trio.from_thread.check_cancelled


def _load_errors(dialect: Dialect) -> tuple[type[BaseException], ...]:
    """What a refused load raises: the driver's errors, and Arrow's for a file that turns out
    to be damaged halfway. OverflowError: sqlite3 and python-tds refuse integers too big for
    the column that way."""
    import pyarrow as pa

    common: tuple[type[BaseException], ...] = (pa.ArrowException, OverflowError, OSError)
    match dialect:
        case Dialect.SQLITE:
            return (sqlite3.Error, *common)
        case Dialect.DUCKDB:
            import duckdb

            return (duckdb.Error, *common)
        case Dialect.POSTGRES:
            import psycopg

            return (psycopg.Error, *common)
        case Dialect.MSSQL:
            import pytds

            return (pytds.Error, *common)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def match_columns(
    file_names: Sequence[str], table_names: Sequence[str], table: TableName, path: Path
) -> list[str]:
    """The table column each file column goes into: the same name, else the one column whose
    name differs only in case."""
    exact = set(table_names)
    folded: dict[str, list[str]] = {}
    for column in table_names:
        folded.setdefault(column.casefold(), []).append(column)
    targets: list[str] = []
    missing: list[str] = []
    for column in file_names:
        if column in exact:
            targets.append(column)
        elif len(candidates := folded.get(column.casefold(), [])) == 1:
            targets.append(candidates[0])
        else:
            missing.append(column)
    if missing:
        raise ConnectorError(
            f"{path.name} has column(s) {', '.join(map(repr, missing))} that table {table} lacks "
            f"(it has {', '.join(map(repr, table_names)) or 'none'}); rename them in the file, "
            f"add them to the table, or load with mode {LoadMode.CREATE_OR_REPLACE.value!r}"
        )
    if len(set(targets)) != len(targets):
        raise ConnectorError(
            f"{path.name} has columns that differ only in case and table {table} cannot tell "
            "them apart; rename them in the file"
        )
    return targets
