"""How a Parquet file's columns meet a table's, for the loader: names quoted, Arrow types mapped
to each database's, batches turned into values each driver takes."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from pit.connectors.target import ConnectorError, Dialect

if TYPE_CHECKING:
    import pyarrow as pa

PYTHON_ROWS = 8_192
"""Rows per batch for the drivers that take Python values (SQLite, SQL Server): Python objects
take several times the room of Arrow's, so a whole BATCH_ROWS of them would be most of the
loader's memory."""


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


def plain_values(
    batch: pa.RecordBatch, columns: Sequence[FileColumn], dialect: Dialect
) -> list[Any]:
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
        arrays = plain_values(batch, columns, dialect)
        # The arrays are one batch's columns: of equal length, so no zip(strict=True) per row.
        yield batch.num_rows, zip(*(array.to_pylist() for array in arrays))  # noqa: B905
