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

import contextlib
import enum
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from pit.connectors.sql import BATCH_ROWS, BlockingConnection
from pit.connectors.target import ConnectorError, Dialect

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

PYTHON_ROWS = 8_192
"""Rows per batch for the drivers that take Python values (SQLite, SQL Server): Python objects
take several times the room of Arrow's, so a whole BATCH_ROWS of them would be most of the
loader's memory."""
_READ_BUFFER = 1 << 20
"""Bytes of a column chunk the Parquet reader reads at a time (0, pyarrow's default, reads each
column chunk whole: a row group of a million rows would then be in memory at once)."""

DEFAULT_SCHEMA = {Dialect.MSSQL: "dbo"}
"""The schema used when none is given; other databases use their own default (search_path,
main)."""


class LoadMode(enum.Enum):
    APPEND = "append"
    """Add the file's rows to an existing table."""
    TRUNCATE_AND_LOAD = "truncate_and_load"
    """Empty an existing table, then load; both or neither happen."""
    CREATE_OR_REPLACE = "create_or_replace"
    """Drop the table if it exists and create it from the Parquet schema, then load."""


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
        writer = _WRITERS[dialect](connection.raw, name)
        try:
            with writer.transaction():
                return _load(writer, parquet, columns, name, mode, path)
        except _load_errors(dialect) as exc:
            raise ConnectorError(
                f"loading {path.name} into {dialect.value} table {name} failed, and the table "
                f"was left as it was: {_first_line(exc)}"
            ) from exc


def _load(
    writer: _Writer,
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


# --- names -----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class TableName:
    schema: str | None
    table: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.table}" if self.schema is not None else self.table


def quote_double(name: str) -> str:
    """An identifier in SQL-standard double quotes (SQLite, DuckDB, PostgreSQL)."""
    return '"' + name.replace('"', '""') + '"'


def quote_bracket(name: str) -> str:
    """An identifier in SQL Server's brackets."""
    return "[" + name.replace("]", "]]") + "]"


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


# --- types -----------------------------------------------------------------------------------


class Kind(enum.Enum):
    """What pit knows how to load; each Arrow type is one of these or is refused."""

    INT8 = "int8"
    INT16 = "int16"
    INT32 = "int32"
    INT64 = "int64"
    UINT8 = "uint8"
    UINT16 = "uint16"
    UINT32 = "uint32"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    BOOL = "bool"
    TEXT = "text"
    DATE = "date"
    TIME = "time"
    TIMESTAMP = "timestamp"
    TIMESTAMP_TZ = "timestamp with time zone"
    DECIMAL = "decimal"
    BINARY = "binary"


_DIALECT_ORDER = (Dialect.POSTGRES, Dialect.DUCKDB, Dialect.SQLITE, Dialect.MSSQL)
# SQLite has no date, time or decimal types: ISO-8601 text (what its date functions read; time-
# zone-aware timestamps in UTC, ending in Z) and exact decimal text. SQL Server's TINYINT is
# unsigned. Python (hence python-tds) holds times to the microsecond.
_SQL_TYPE_TABLE = {
    # kind: (postgres, duckdb, sqlite, mssql)
    Kind.INT8: ("SMALLINT", "TINYINT", "INTEGER", "SMALLINT"),
    Kind.INT16: ("SMALLINT", "SMALLINT", "INTEGER", "SMALLINT"),
    Kind.INT32: ("INTEGER", "INTEGER", "INTEGER", "INT"),
    Kind.INT64: ("BIGINT", "BIGINT", "INTEGER", "BIGINT"),
    Kind.UINT8: ("SMALLINT", "UTINYINT", "INTEGER", "TINYINT"),
    Kind.UINT16: ("INTEGER", "USMALLINT", "INTEGER", "INT"),
    Kind.UINT32: ("BIGINT", "UINTEGER", "INTEGER", "BIGINT"),
    Kind.UINT64: ("NUMERIC(20,0)", "UBIGINT", "INTEGER", "DECIMAL(20,0)"),
    Kind.FLOAT32: ("REAL", "REAL", "REAL", "REAL"),
    Kind.FLOAT64: ("DOUBLE PRECISION", "DOUBLE", "REAL", "FLOAT"),
    Kind.BOOL: ("BOOLEAN", "BOOLEAN", "INTEGER", "BIT"),
    Kind.TEXT: ("TEXT", "VARCHAR", "TEXT", "NVARCHAR(MAX)"),
    Kind.DATE: ("DATE", "DATE", "TEXT", "DATE"),
    Kind.TIME: ("TIME", "TIME", "TEXT", "TIME(6)"),
    Kind.TIMESTAMP: ("TIMESTAMP", "TIMESTAMP", "TEXT", "DATETIME2(6)"),
    Kind.TIMESTAMP_TZ: ("TIMESTAMPTZ", "TIMESTAMPTZ", "TEXT", "DATETIMEOFFSET(6)"),
    Kind.DECIMAL: ("NUMERIC({p},{s})", "DECIMAL({p},{s})", "TEXT", "DECIMAL({p},{s})"),
    Kind.BINARY: ("BYTEA", "BLOB", "BLOB", "VARBINARY(MAX)"),
}
_SQL_TYPES = {
    dialect: {kind: names[index] for kind, names in _SQL_TYPE_TABLE.items()}
    for index, dialect in enumerate(_DIALECT_ORDER)
}

_MAX_DECIMAL_PRECISION = {Dialect.DUCKDB: 38, Dialect.MSSQL: 38, Dialect.POSTGRES: 1000}


def kind_of(arrow_type: pa.DataType) -> Kind | None:
    """The Kind of an Arrow type; None when pit cannot load it. A dictionary column is its
    values' type; a column of nulls only is text."""
    import pyarrow as pa

    types = pa.types
    if types.is_dictionary(arrow_type):
        return kind_of(arrow_type.value_type)
    if types.is_integer(arrow_type):
        return Kind(str(arrow_type))
    checks = (
        (types.is_float32, Kind.FLOAT32),
        (types.is_float64, Kind.FLOAT64),
        (types.is_boolean, Kind.BOOL),
        (types.is_date, Kind.DATE),
        (types.is_time, Kind.TIME),
        (types.is_decimal, Kind.DECIMAL),
    )
    for check, kind in checks:
        if check(arrow_type):
            return kind
    if types.is_timestamp(arrow_type):
        return Kind.TIMESTAMP_TZ if arrow_type.tz is not None else Kind.TIMESTAMP
    if (
        types.is_string(arrow_type)
        or types.is_large_string(arrow_type)
        or types.is_string_view(arrow_type)
        or types.is_null(arrow_type)
    ):
        return Kind.TEXT
    if (
        types.is_binary(arrow_type)
        or types.is_large_binary(arrow_type)
        or types.is_fixed_size_binary(arrow_type)
        or types.is_binary_view(arrow_type)
    ):
        return Kind.BINARY
    return None


@attrs.frozen(kw_only=True)
class FileColumn:
    name: str
    arrow_type: Any
    """The column's pyarrow DataType."""
    kind: Kind
    sql_type: str
    """The column's type in a table create_or_replace creates."""


def sql_type(arrow_type: pa.DataType, dialect: Dialect) -> str | None:
    """The column type create_or_replace declares for an Arrow type; None when there is none."""
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    kind = kind_of(arrow_type)
    if kind is None:
        return None
    declared = _SQL_TYPES[dialect][kind]
    if kind is Kind.DECIMAL:
        if arrow_type.precision > _MAX_DECIMAL_PRECISION.get(dialect, arrow_type.precision):
            return None
        declared = declared.format(p=arrow_type.precision, s=arrow_type.scale)
    return declared


def file_columns(arrow_schema: pa.Schema, dialect: Dialect, path: Path) -> list[FileColumn]:
    """The Parquet file's columns with their SQL types; a ConnectorError names the first column
    pit cannot load, or a name used twice."""
    columns: list[FileColumn] = []
    seen: set[str] = set()
    for field in arrow_schema:
        if field.name in seen:
            raise ConnectorError(f"{path.name} has two columns named {field.name!r}")
        seen.add(field.name)
        declared = sql_type(field.type, dialect)
        kind = kind_of(field.type)
        if declared is None or kind is None:
            raise ConnectorError(
                f"column {field.name!r} of {path.name} has type {field.type}, which pit cannot "
                f"load into {dialect.value}; write it as an integer, float, bool, string, date, "
                "time, timestamp, decimal (at most 38 digits outside PostgreSQL) or binary column"
            )
        columns.append(
            FileColumn(name=field.name, arrow_type=field.type, kind=kind, sql_type=declared)
        )
    return columns


def _plain(batch: pa.RecordBatch, columns: Sequence[FileColumn], dialect: Dialect) -> list[Any]:
    """The batch's columns as Arrow arrays each driver takes as they are: dictionaries decoded,
    time-zone-aware timestamps in UTC, and per database what its path cannot take."""
    import pyarrow as pa

    arrays: list[Any] = []
    for array, column in zip(batch.columns, columns, strict=True):
        arrow_type = column.arrow_type
        if pa.types.is_dictionary(arrow_type):
            arrow_type = arrow_type.value_type
            array = array.cast(arrow_type)
        if pa.types.is_null(arrow_type) or pa.types.is_string_view(arrow_type):
            array = array.cast(pa.string())
        elif pa.types.is_binary_view(arrow_type):
            array = array.cast(pa.binary())
        if column.kind is Kind.TIMESTAMP_TZ and arrow_type.tz != "UTC":
            arrow_type = pa.timestamp(arrow_type.unit, tz="UTC")
            array = array.cast(arrow_type)
        match dialect:
            case Dialect.POSTGRES if column.kind is Kind.BINARY:
                array = pa.array(
                    [None if v is None else "\\x" + v.hex() for v in array.to_pylist()],
                    pa.string(),
                )
            case Dialect.SQLITE if column.kind in _SQLITE_AS_TEXT:
                array = array.cast(pa.string())
            case Dialect.MSSQL if column.kind is Kind.UINT64:
                array = array.cast(pa.decimal128(20, 0))
            case Dialect.MSSQL if column.kind in (Kind.TIMESTAMP, Kind.TIMESTAMP_TZ):
                if arrow_type.unit == "ns":  # Python datetimes hold microseconds
                    array = array.cast(pa.timestamp("us", tz=arrow_type.tz), safe=False)
            case Dialect.MSSQL if column.kind is Kind.TIME and arrow_type.unit == "ns":
                array = array.cast(pa.time64("us"), safe=False)
        arrays.append(array)
    return arrays


_SQLITE_AS_TEXT = {Kind.DATE, Kind.TIME, Kind.TIMESTAMP, Kind.TIMESTAMP_TZ, Kind.DECIMAL}


def python_rows(
    batches: Iterable[pa.RecordBatch], columns: Sequence[FileColumn], dialect: Dialect
) -> Iterator[tuple[int, Iterator[tuple[Any, ...]]]]:
    """For each batch, its number of rows and the rows as Python tuples (made as the driver
    takes them), for the drivers that take Python values."""
    for batch in batches:
        arrays = _plain(batch, columns, dialect)
        # The arrays are one batch's columns: of equal length, so no zip(strict=True) per row.
        yield batch.num_rows, zip(*(array.to_pylist() for array in arrays))  # noqa: B905


# --- per database ----------------------------------------------------------------------------


class _Writer(Protocol):
    name_hint: str
    """Added to the message for a missing table."""
    batch_rows: int

    def transaction(self) -> contextlib.AbstractContextManager[None]: ...

    def existing_columns(self) -> list[str] | None:
        """The table's columns in order; None when there is no such table."""
        ...

    def clear(self) -> None: ...

    def replace(self, columns: Sequence[FileColumn]) -> None: ...

    def insert(
        self, batches: Iterable[pa.RecordBatch], columns: Sequence[FileColumn], targets: list[str]
    ) -> int: ...


def _create_sql(qualified: str, columns: Sequence[FileColumn], quote: Any) -> str:
    definitions = ", ".join(f"{quote(c.name)} {c.sql_type}" for c in columns)
    return f"CREATE TABLE {qualified} ({definitions})"


class _SqliteWriter:
    name_hint = ""
    batch_rows = PYTHON_ROWS

    def __init__(self, raw: sqlite3.Connection, name: TableName) -> None:
        self.raw = raw
        self.name = name
        self.qualified = ".".join(
            quote_double(part) for part in (name.schema, name.table) if part is not None
        )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.raw.execute("BEGIN")
        try:
            yield
        except BaseException:
            if self.raw.in_transaction:  # an interrupt or some errors end it already
                with contextlib.suppress(sqlite3.Error):
                    self.raw.execute("ROLLBACK")
            raise
        self.raw.execute("COMMIT")

    def existing_columns(self) -> list[str] | None:
        rows = self.raw.execute(
            "SELECT name FROM pragma_table_info(?, ?)", (self.name.table, self.name.schema)
        ).fetchall()
        return [row[0] for row in rows] or None

    def clear(self) -> None:
        self.raw.execute(f"DELETE FROM {self.qualified}")

    def replace(self, columns: Sequence[FileColumn]) -> None:
        self.raw.execute(f"DROP TABLE IF EXISTS {self.qualified}")
        self.raw.execute(_create_sql(self.qualified, columns, quote_double))

    def insert(
        self, batches: Iterable[pa.RecordBatch], columns: Sequence[FileColumn], targets: list[str]
    ) -> int:
        marks = ", ".join("?" * len(targets))
        statement = (
            f"INSERT INTO {self.qualified} ({', '.join(map(quote_double, targets))}) "
            f"VALUES ({marks})"
        )
        loaded = 0
        for count, rows in python_rows(batches, columns, Dialect.SQLITE):
            self.raw.executemany(statement, rows)
            loaded += count
        return loaded


class _DuckDbWriter:
    name_hint = ""
    batch_rows = BATCH_ROWS
    _VIEW = "__pit_load_batch"

    def __init__(self, raw: Any, name: TableName) -> None:
        self.raw = raw
        self.name = name
        self.qualified = ".".join(
            quote_double(part) for part in (name.schema, name.table) if part is not None
        )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        import duckdb

        self.raw.begin()
        try:
            yield
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                self.raw.rollback()
            raise
        self.raw.commit()

    def _execute(self, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
        # Fetch every result: DuckDB refuses some calls while one is unfinished.
        return list(self.raw.execute(statement, params).fetchall())

    def existing_columns(self) -> list[str] | None:
        # DuckDB matches names case-insensitively, quoted or not.
        found = self._execute(
            "SELECT list(c.column_name ORDER BY c.column_index) FROM duckdb_tables() t "
            "LEFT JOIN duckdb_columns() c ON c.table_oid = t.table_oid "
            "WHERE t.database_name = current_database() "
            "AND lower(t.schema_name) = lower(coalesce(?, current_schema())) "
            "AND lower(t.table_name) = lower(?) GROUP BY t.table_oid",
            (self.name.schema, self.name.table),
        )
        return list(found[0][0]) if found else None

    def clear(self) -> None:
        self._execute(f"DELETE FROM {self.qualified}")

    def replace(self, columns: Sequence[FileColumn]) -> None:
        self._execute(f"DROP TABLE IF EXISTS {self.qualified}")
        self._execute(_create_sql(self.qualified, columns, quote_double))

    def insert(
        self, batches: Iterable[pa.RecordBatch], columns: Sequence[FileColumn], targets: list[str]
    ) -> int:
        import pyarrow as pa

        statement = (
            f"INSERT INTO {self.qualified} ({', '.join(map(quote_double, targets))}) "
            f"SELECT {', '.join(quote_double(c.name) for c in columns)} FROM {self._VIEW}"
        )
        loaded = 0
        for batch in batches:
            plain = pa.RecordBatch.from_arrays(
                _plain(batch, columns, Dialect.DUCKDB), names=[c.name for c in columns]
            )
            # A relation's query, not register(): a registered view dropped inside a
            # transaction keeps its batch alive until the commit, so memory would grow with
            # the file.
            self.raw.from_arrow(plain).query(self._VIEW, statement)
            loaded += batch.num_rows
        return loaded


class _PostgresWriter:
    name_hint = " (PostgreSQL names are case-sensitive: pit quotes them)"
    batch_rows = BATCH_ROWS

    def __init__(self, raw: Any, name: TableName) -> None:
        from psycopg import sql

        self.raw = raw
        self.name = name
        parts = [part for part in (name.schema, name.table) if part is not None]
        self.qualified = sql.Identifier(*parts)

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        return self.raw.transaction()  # type: ignore[no-any-return]

    def existing_columns(self) -> list[str] | None:
        regclass = self.qualified.as_string(self.raw)
        found = self.raw.execute(
            "SELECT c.relkind, array(SELECT a.attname::text FROM pg_attribute a "
            "WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY a.attnum) FROM pg_class c WHERE c.oid = to_regclass(%s)",
            (regclass,),
        ).fetchone()
        if found is None:
            return None
        kind, names = found
        if kind not in ("r", "p"):
            raise ConnectorError(f"{self.name} is not a table (pg_class.relkind {kind!r})")
        return list(names)

    def clear(self) -> None:
        from psycopg import sql

        self.raw.execute(sql.SQL("TRUNCATE {}").format(self.qualified))

    def replace(self, columns: Sequence[FileColumn]) -> None:
        from psycopg import sql

        self.raw.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self.qualified))
        definitions = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.sql_type)) for c in columns
        )
        self.raw.execute(sql.SQL("CREATE TABLE {} ({})").format(self.qualified, definitions))

    def insert(
        self, batches: Iterable[pa.RecordBatch], columns: Sequence[FileColumn], targets: list[str]
    ) -> int:
        # CSV: an unquoted empty field is NULL, a quoted one ("") the empty string, which is
        # what pyarrow writes; booleans as true/false, timestamps in ISO 8601 (UTC ends in Z).
        import pyarrow as pa
        import pyarrow.csv as pacsv
        from psycopg import sql

        options = pacsv.WriteOptions(include_header=False)
        statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
            self.qualified, sql.SQL(", ").join(map(sql.Identifier, targets))
        )
        loaded = 0
        with self.raw.cursor() as cursor, cursor.copy(statement) as copy:
            for batch in batches:
                plain = pa.RecordBatch.from_arrays(
                    _plain(batch, columns, Dialect.POSTGRES), names=[c.name for c in columns]
                )
                sink = pa.BufferOutputStream()
                pacsv.write_csv(plain, sink, write_options=options)
                copy.write(memoryview(sink.getvalue()))
                loaded += batch.num_rows
        return loaded


class _MssqlWriter:
    name_hint = ""
    batch_rows = PYTHON_ROWS

    def __init__(self, raw: Any, name: TableName) -> None:
        self.raw = raw
        self.name = name
        assert name.schema is not None  # DEFAULT_SCHEMA
        self.qualified = f"{quote_bracket(name.schema)}.{quote_bracket(name.table)}"

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        import pytds

        self.raw.autocommit = False  # python-tds begins a transaction
        try:
            yield
        except BaseException:
            with contextlib.suppress(pytds.Error, OSError):
                self.raw.rollback()
            raise
        else:
            self.raw.commit()
        finally:
            with contextlib.suppress(pytds.Error, OSError):
                self.raw.autocommit = True

    def _execute(self, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self.raw.cursor() as cursor:
            cursor.execute(statement, params)
            return list(cursor.fetchall()) if cursor.description else []

    def existing_columns(self) -> list[str] | None:
        rows = self._execute(
            "SELECT o.type, c.name FROM sys.objects o "
            "LEFT JOIN sys.columns c ON c.object_id = o.object_id "
            "WHERE o.object_id = OBJECT_ID(%s) ORDER BY c.column_id",
            (self.qualified,),
        )
        if not rows:
            return None
        if rows[0][0].strip() != "U":
            raise ConnectorError(f"{self.name} is not a table (sys.objects.type {rows[0][0]!r})")
        return [row[1] for row in rows]

    def clear(self) -> None:
        self._execute(f"TRUNCATE TABLE {self.qualified}")

    def replace(self, columns: Sequence[FileColumn]) -> None:
        self._execute(f"DROP TABLE IF EXISTS {self.qualified}")
        self._execute(_create_sql(self.qualified, columns, quote_bracket))

    def insert(
        self, batches: Iterable[pa.RecordBatch], columns: Sequence[FileColumn], targets: list[str]
    ) -> int:
        loaded = 0

        def rows() -> Iterator[tuple[Any, ...]]:
            nonlocal loaded
            for count, chunk in python_rows(batches, columns, Dialect.MSSQL):
                yield from chunk
                loaded += count

        with self.raw.cursor() as cursor:
            cursor.copy_to(
                table_or_view=self.name.table,
                schema=self.name.schema,
                columns=mssql_columns(columns, targets),
                data=rows(),
                check_constraints=True,  # bulk inserts skip CHECK constraints unless told
                keep_nulls=True,  # a NULL in the file is NULL, not the column's default
            )
        return loaded


def mssql_columns(columns: Sequence[FileColumn], targets: Sequence[str]) -> list[Any]:
    """python-tds Column objects typed after the file (without types every value would travel
    as NVARCHAR(4000)), named after the table's columns they go into."""
    from pytds import tds_base, tds_types

    def tds_type(column: FileColumn) -> Any:
        match column.kind:
            case Kind.INT8 | Kind.INT16:
                return tds_types.SmallIntType()
            case Kind.INT32 | Kind.UINT16:
                return tds_types.IntType()
            case Kind.INT64 | Kind.UINT32:
                return tds_types.BigIntType()
            case Kind.UINT8:
                return tds_types.TinyIntType()
            case Kind.UINT64:
                return tds_types.DecimalType(precision=20, scale=0)
            case Kind.FLOAT32:
                return tds_types.RealType()
            case Kind.FLOAT64:
                return tds_types.FloatType()
            case Kind.BOOL:
                return tds_types.BitType()
            case Kind.TEXT:
                return tds_types.NVarCharMaxType()
            case Kind.DATE:
                return tds_types.DateType()
            case Kind.TIME:
                return tds_types.TimeType(precision=6)
            case Kind.TIMESTAMP:
                return tds_types.DateTime2Type(precision=6)
            case Kind.TIMESTAMP_TZ:
                return tds_types.DateTimeOffsetType(precision=6)
            case Kind.DECIMAL:
                arrow_type = column.arrow_type
                if hasattr(arrow_type, "value_type"):  # dictionary-encoded
                    arrow_type = arrow_type.value_type
                return tds_types.DecimalType(precision=arrow_type.precision, scale=arrow_type.scale)
            case Kind.BINARY:
                return tds_types.VarBinaryMaxType()

    return [
        tds_base.Column(name=target, type=tds_type(column), flags=tds_base.Column.fNullable)
        for column, target in zip(columns, targets, strict=True)
    ]


_WRITERS: dict[Dialect, type[_SqliteWriter | _DuckDbWriter | _PostgresWriter | _MssqlWriter]] = {
    Dialect.SQLITE: _SqliteWriter,
    Dialect.DUCKDB: _DuckDbWriter,
    Dialect.POSTGRES: _PostgresWriter,
    Dialect.MSSQL: _MssqlWriter,
}
