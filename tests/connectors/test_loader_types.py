"""The loader's pure parts: type mapping per database, SQL Server's typed bulk-copy columns, the
Python values handed to drivers, column matching and identifier quoting; and SQL Server's load
against a stand-in for python-tds. No database needed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pytds import tds_base, tds_types

from pit.connectors.columns import (
    Kind,
    TableName,
    file_columns,
    kind_of,
    python_rows,
    quote_bracket,
    quote_double,
    sql_type,
)
from pit.connectors.loader import load_parquet, match_columns
from pit.connectors.target import ConnectorError, Dialect
from pit.connectors.writers import (
    mssql_columns,
)
from pit.spec.dag import LoadMode

FILE = Path("sales.parquet")
SALES = TableName(schema=None, table="sales")

#: The Arrow types the issue asks for, and what each database gets.
EXPECTED = {
    # arrow type: (postgres, duckdb, sqlite, mssql)
    pa.int8(): ("SMALLINT", "TINYINT", "INTEGER", "SMALLINT"),
    pa.int16(): ("SMALLINT", "SMALLINT", "INTEGER", "SMALLINT"),
    pa.int32(): ("INTEGER", "INTEGER", "INTEGER", "INT"),
    pa.int64(): ("BIGINT", "BIGINT", "INTEGER", "BIGINT"),
    pa.float32(): ("REAL", "REAL", "REAL", "REAL"),
    pa.float64(): ("DOUBLE PRECISION", "DOUBLE", "REAL", "FLOAT"),
    pa.bool_(): ("BOOLEAN", "BOOLEAN", "INTEGER", "BIT"),
    pa.string(): ("TEXT", "VARCHAR", "TEXT", "NVARCHAR(MAX)"),
    pa.large_string(): ("TEXT", "VARCHAR", "TEXT", "NVARCHAR(MAX)"),
    pa.date32(): ("DATE", "DATE", "TEXT", "DATE"),
    pa.timestamp("us"): ("TIMESTAMP", "TIMESTAMP", "TEXT", "DATETIME2(6)"),
    pa.timestamp("ns"): ("TIMESTAMP", "TIMESTAMP", "TEXT", "DATETIME2(6)"),
    pa.timestamp("ms", tz="UTC"): ("TIMESTAMPTZ", "TIMESTAMPTZ", "TEXT", "DATETIMEOFFSET(6)"),
    pa.timestamp("s", tz="Asia/Tokyo"): ("TIMESTAMPTZ", "TIMESTAMPTZ", "TEXT", "DATETIMEOFFSET(6)"),
    pa.decimal128(12, 4): ("NUMERIC(12,4)", "DECIMAL(12,4)", "TEXT", "DECIMAL(12,4)"),
    pa.binary(): ("BYTEA", "BLOB", "BLOB", "VARBINARY(MAX)"),
    pa.large_binary(): ("BYTEA", "BLOB", "BLOB", "VARBINARY(MAX)"),
    pa.dictionary(pa.int32(), pa.string()): ("TEXT", "VARCHAR", "TEXT", "NVARCHAR(MAX)"),
    pa.null(): ("TEXT", "VARCHAR", "TEXT", "NVARCHAR(MAX)"),
}
DIALECTS = (Dialect.POSTGRES, Dialect.DUCKDB, Dialect.SQLITE, Dialect.MSSQL)


@pytest.mark.parametrize("arrow_type", list(EXPECTED), ids=str)
def test_each_arrow_type_maps_to_a_column_type_per_database(arrow_type: pa.DataType) -> None:
    assert tuple(sql_type(arrow_type, dialect) for dialect in DIALECTS) == EXPECTED[arrow_type]


def test_unsigned_integers_fit_without_overflow() -> None:
    # SQL Server's TINYINT is unsigned; PostgreSQL has no unsigned types.
    assert sql_type(pa.uint8(), Dialect.MSSQL) == "TINYINT"
    assert sql_type(pa.uint64(), Dialect.POSTGRES) == "NUMERIC(20,0)"
    assert sql_type(pa.uint64(), Dialect.DUCKDB) == "UBIGINT"


def test_wide_decimals_fit_postgres_only() -> None:
    wide = pa.decimal256(50, 10)
    assert sql_type(wide, Dialect.POSTGRES) == "NUMERIC(50,10)"
    assert sql_type(wide, Dialect.SQLITE) == "TEXT"
    assert sql_type(wide, Dialect.DUCKDB) is None
    assert sql_type(wide, Dialect.MSSQL) is None


@pytest.mark.parametrize(
    "arrow_type",
    [
        pa.list_(pa.int64()),
        pa.struct([("a", pa.int64())]),
        pa.map_(pa.string(), pa.int64()),
        pa.float16(),
        pa.duration("s"),
    ],
    ids=str,
)
def test_other_types_have_no_mapping(arrow_type: pa.DataType) -> None:
    assert kind_of(arrow_type) is None
    assert all(sql_type(arrow_type, dialect) is None for dialect in DIALECTS)


def test_an_unsupported_column_is_named_with_its_type() -> None:
    schema = pa.schema([("id", pa.int64()), ("tags", pa.list_(pa.string()))])
    with pytest.raises(ConnectorError, match=r"column 'tags' of sales\.parquet has type list"):
        file_columns(schema, Dialect.POSTGRES, FILE)


def test_a_decimal_too_wide_for_the_database_is_named() -> None:
    schema = pa.schema([("amount", pa.decimal256(40, 2))])
    with pytest.raises(ConnectorError, match=r"'amount'.*decimal256\(40, 2\).*into duckdb"):
        file_columns(schema, Dialect.DUCKDB, FILE)


def test_a_column_name_used_twice_is_an_error() -> None:
    schema = pa.schema([("id", pa.int64()), ("id", pa.string())])
    with pytest.raises(ConnectorError, match="two columns named 'id'"):
        file_columns(schema, Dialect.SQLITE, FILE)


def test_file_columns_carry_kind_and_declaration() -> None:
    schema = pa.schema([("at", pa.timestamp("us", tz="UTC")), ("n", pa.int16())])
    columns = file_columns(schema, Dialect.POSTGRES, FILE)
    assert [(c.name, c.kind, c.sql_type) for c in columns] == [
        ("at", Kind.TIMESTAMP_TZ, "TIMESTAMPTZ"),
        ("n", Kind.INT16, "SMALLINT"),
    ]


def test_load_modes_are_named_as_in_pit_toml() -> None:
    assert [mode.value for mode in LoadMode] == ["append", "truncate_and_load", "create_or_replace"]


# --- SQL Server: typed bulk-copy columns and the values sent ----------------------------------


def test_sql_server_bulk_columns_are_typed_after_the_file_and_named_after_the_table() -> None:
    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("small", pa.int8()),
            ("ratio", pa.float32()),
            ("name", pa.string()),
            ("flag", pa.bool_()),
            ("day", pa.date32()),
            ("at", pa.timestamp("ns")),
            ("at_utc", pa.timestamp("us", tz="UTC")),
            ("amount", pa.decimal128(12, 4)),
            ("blob", pa.binary()),
            ("huge", pa.uint64()),
        ]
    )
    targets = [field.name.upper() for field in schema]
    columns = mssql_columns(file_columns(schema, Dialect.MSSQL, FILE), targets)
    assert [column.column_name for column in columns] == targets
    assert all(isinstance(column, tds_base.Column) for column in columns)
    assert all(column.flags == tds_base.Column.fNullable for column in columns)
    assert [type(column.type) for column in columns] == [
        tds_types.BigIntType,
        tds_types.SmallIntType,
        tds_types.RealType,
        tds_types.NVarCharMaxType,
        tds_types.BitType,
        tds_types.DateType,
        tds_types.DateTime2Type,
        tds_types.DateTimeOffsetType,
        tds_types.DecimalType,
        tds_types.VarBinaryMaxType,
        tds_types.DecimalType,
    ]
    amount, huge = columns[8].type, columns[10].type
    assert (amount.precision, amount.scale) == (12, 4)
    assert (huge.precision, huge.scale) == (20, 0)
    # Never the untyped fallback python-tds would use, NVARCHAR(4000).
    assert not any(isinstance(column.type, tds_types.NVarCharType) for column in columns)


def test_sql_server_gets_python_values_its_serializers_take() -> None:
    at = dt.datetime(2024, 2, 29, 12, 34, 56, 789012, tzinfo=dt.UTC)
    table = pa.table(
        {
            "huge": pa.array([2**64 - 1, None], pa.uint64()),
            "at_ns": pa.array([1_700_000_000_123_456_789, None], pa.timestamp("ns")),
            "at_berlin": pa.array([at, None], pa.timestamp("us", tz="Europe/Berlin")),
            "code": pa.array(["a", None]).dictionary_encode(),
            "clock": pa.array([45_296_000_000_123, None], pa.time64("ns")),
        }
    )
    columns = file_columns(table.schema, Dialect.MSSQL, FILE)
    ((count, made),) = python_rows(table.to_batches(), columns, Dialect.MSSQL)
    rows = list(made)
    assert count == len(rows) == 2
    huge, at_ns, at_berlin, code, clock = rows[0]
    assert huge == Decimal(2**64 - 1)
    assert at_ns == dt.datetime(2023, 11, 14, 22, 13, 20, 123456)  # noqa: DTZ001 (naive column)
    assert at_ns.tzinfo is None
    assert at_berlin == at
    assert at_berlin.utcoffset() == dt.timedelta(0)
    assert code == "a"
    assert clock == dt.time(12, 34, 56)
    assert rows[1] == (None,) * 5


def test_sqlite_gets_iso_text_for_dates_times_and_decimals() -> None:
    table = pa.table(
        {
            "day": pa.array([dt.date(2024, 2, 29)], pa.date32()),
            "at_tokyo": pa.array(
                [dt.datetime(2024, 1, 1, tzinfo=dt.UTC)], pa.timestamp("s", tz="Asia/Tokyo")
            ),
            "amount": pa.array([Decimal("-1.50")], pa.decimal128(5, 2)),
            "flag": pa.array([True]),
        }
    )
    columns = file_columns(table.schema, Dialect.SQLITE, FILE)
    ((count, rows),) = python_rows(table.to_batches(), columns, Dialect.SQLITE)
    assert count == 1
    assert list(rows) == [("2024-02-29", "2024-01-01 00:00:00Z", "-1.50", True)]


# --- names ------------------------------------------------------------------------------------


def test_identifiers_are_quoted_not_pasted() -> None:
    assert quote_double('we"ird; DROP TABLE x') == '"we""ird; DROP TABLE x"'
    assert quote_bracket("a]b[c") == "[a]]b[c]"
    assert str(TableName(schema="dbo", table="t")) == "dbo.t"
    assert str(TableName(schema=None, table="t")) == "t"


def test_columns_match_exactly_then_ignoring_case() -> None:
    assert match_columns(["id", "NAME"], ["Id", "id", "name"], SALES, FILE) == ["id", "name"]


def test_a_column_matching_two_table_columns_by_case_is_missing() -> None:
    with pytest.raises(ConnectorError, match=r"column\(s\) 'NAME' that table sales lacks"):
        match_columns(["NAME"], ["Name", "name"], SALES, FILE)


def test_missing_columns_are_all_named_with_the_tables_columns() -> None:
    with pytest.raises(ConnectorError) as caught:
        match_columns(["id", "colour", "size"], ["id", "amount"], SALES, FILE)
    message = str(caught.value)
    assert "'colour', 'size' that table sales lacks (it has 'id', 'amount')" in message
    assert "create_or_replace" in message


def test_two_file_columns_landing_in_one_table_column_is_an_error() -> None:
    with pytest.raises(ConnectorError, match="differ only in case"):
        match_columns(["Amount", "AMOUNT"], ["amount"], SALES, FILE)


# --- SQL Server's load, against a stand-in for python-tds -------------------------------------


class FakeTdsCursor:
    def __init__(self, server: FakeTds) -> None:
        self.server = server
        self.description: list[tuple[str]] | None = None
        self._rows: list[tuple[object, ...]] = []

    def __enter__(self) -> FakeTdsCursor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def execute(self, statement: str, params: tuple[object, ...] = ()) -> None:
        self.server.log.append(("execute", statement, params))
        self._rows = self.server.existing if "sys.objects" in statement else []
        self.description = [("x",)] if "sys.objects" in statement else None

    def fetchall(self) -> list[tuple[object, ...]]:
        return self._rows

    def copy_to(self, **options: object) -> None:
        data = options.pop("data")
        assert isinstance(data, Iterator)
        self.server.copied = list(data)  # python-tds consumes the rows while it sends them
        self.server.log.append(("copy_to", options))
        if self.server.refuse:
            raise tds_base.IntegrityError("The INSERT statement conflicted with a CHECK constraint")


class FakeTds:
    """What the loader uses of a python-tds connection, recording what it is asked."""

    def __init__(self, existing: list[tuple[object, ...]], *, refuse: bool = False) -> None:
        self.existing = existing
        self.refuse = refuse
        self.log: list[tuple[object, ...]] = []
        self.copied: list[tuple[object, ...]] = []
        self._autocommit = True

    @property
    def autocommit(self) -> bool:
        return self._autocommit

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        self.log.append(("autocommit", value))
        self._autocommit = value

    def cursor(self) -> FakeTdsCursor:
        return FakeTdsCursor(self)

    def commit(self) -> None:
        self.log.append(("commit",))

    def rollback(self) -> None:
        self.log.append(("rollback",))


class FakeConnection:
    dialect = Dialect.MSSQL

    def __init__(self, raw: FakeTds) -> None:
        self.raw = raw


def test_a_sql_server_load_truncates_and_bulk_copies_in_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "sales.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3], "name": ["a", None, "c"]}), path, row_group_size=2)
    server = FakeTds(existing=[("U ", "ID"), ("U ", "Name")])
    connection: Any = FakeConnection(server)
    loaded = load_parquet(connection, path, "sales", schema=None, mode=LoadMode.TRUNCATE_AND_LOAD)
    assert loaded == 3
    assert server.copied == [(1, "a"), (2, None), (3, "c")]
    kinds = [entry[0] for entry in server.log]
    assert kinds == ["autocommit", "execute", "execute", "copy_to", "commit", "autocommit"]
    assert server.log[0] == ("autocommit", False)
    assert server.log[1][2] == ("[dbo].[sales]",)  # OBJECT_ID of the default schema's table
    assert server.log[2][1] == "TRUNCATE TABLE [dbo].[sales]"
    options = server.log[3][1]
    assert isinstance(options, dict)
    assert options["table_or_view"] == "sales"
    assert options["schema"] == "dbo"
    assert options["check_constraints"] is True
    assert options["keep_nulls"] is True
    columns = options["columns"]
    assert [column.column_name for column in columns] == ["ID", "Name"]
    assert [type(column.type) for column in columns] == [
        tds_types.BigIntType,
        tds_types.NVarCharMaxType,
    ]


def test_a_refused_sql_server_load_rolls_back(tmp_path: Path) -> None:
    path = tmp_path / "sales.parquet"
    pq.write_table(pa.table({"id": [1]}), path)
    server = FakeTds(existing=[("U ", "id")], refuse=True)
    connection: Any = FakeConnection(server)
    with pytest.raises(ConnectorError, match=r"into mssql table dbo\.sales failed.*CHECK"):
        load_parquet(connection, path, "sales", schema=None, mode=LoadMode.APPEND)
    assert [entry[0] for entry in server.log][-3:] == ["copy_to", "rollback", "autocommit"]
    assert ("commit",) not in server.log
    assert server.log[-1] == ("autocommit", True)


def test_create_or_replace_on_sql_server_declares_the_mapped_types(tmp_path: Path) -> None:
    path = tmp_path / "sales.parquet"
    data = pa.table({"id": pa.array([1], pa.int8()), "at": pa.array([0], pa.timestamp("us"))})
    pq.write_table(data, path)
    server = FakeTds(existing=[])
    connection: Any = FakeConnection(server)
    load_parquet(connection, path, "new]one", schema="stage", mode=LoadMode.CREATE_OR_REPLACE)
    statements = [entry[1] for entry in server.log if entry[0] == "execute"]
    assert statements == [
        "DROP TABLE IF EXISTS [stage].[new]]one]",
        "CREATE TABLE [stage].[new]]one] ([id] SMALLINT, [at] DATETIME2(6))",
    ]
