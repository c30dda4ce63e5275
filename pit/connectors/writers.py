"""The loader's per-database writers: each makes, empties and fills a table the fastest way its
driver offers, inside one transaction (see `loader.py`)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from pit.connectors.columns import (
    PYTHON_ROWS,
    FileColumn,
    Kind,
    TableName,
    plain_values,
    python_rows,
    quote_bracket,
    quote_double,
)
from pit.connectors.sql import BATCH_ROWS
from pit.connectors.target import ConnectorError, Dialect

if TYPE_CHECKING:
    import pyarrow as pa


class Writer(Protocol):
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
                plain_values(batch, columns, Dialect.DUCKDB), names=[c.name for c in columns]
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
                    plain_values(batch, columns, Dialect.POSTGRES), names=[c.name for c in columns]
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


WRITERS: dict[Dialect, type[_SqliteWriter | _DuckDbWriter | _PostgresWriter | _MssqlWriter]] = {
    Dialect.SQLITE: _SqliteWriter,
    Dialect.DUCKDB: _DuckDbWriter,
    Dialect.POSTGRES: _PostgresWriter,
    Dialect.MSSQL: _MssqlWriter,
}
