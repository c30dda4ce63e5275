"""read_sql and output_sql through connectorx, against SQLite files."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import connectorx
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import pit_sdk
from pit_sdk import _sql

BIG_ROWS = 200_000


def sqlite_database(path: Path, rows: int) -> str:
    """A SQLite file with table `claims` (id, code, amount) of `rows` rows; its connectorx URL."""
    with sqlite3.connect(path) as database:
        database.execute("CREATE TABLE claims (id INTEGER, code TEXT, amount REAL)")
        database.executemany(
            "INSERT INTO claims VALUES (?, ?, ?)",
            ((i, f"C{i % 97}", i * 0.25) for i in range(rows)),
        )
    database.close()
    return f"sqlite:///{path.resolve()}"  # four slashes: an absolute path, as everywhere in pit


@pytest.fixture(scope="module")
def small_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return sqlite_database(tmp_path_factory.mktemp("sql") / "small.db", 10)


@pytest.fixture(scope="module")
def big_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return sqlite_database(tmp_path_factory.mktemp("sql") / "big.db", BIG_ROWS)


class ReadSqlSpy:
    """Records the return_type of each connectorx.read_sql call, then makes it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.return_types: list[str] = []
        self.batch_sizes: list[int | None] = []
        real = connectorx.read_sql

        def spy(conn: str, query: str, **kwargs: Any) -> Any:
            self.return_types.append(kwargs["return_type"])
            self.batch_sizes.append(kwargs.get("batch_size"))
            return real(conn, query, **kwargs)

        monkeypatch.setattr(connectorx, "read_sql", spy)


def test_read_sql_returns_an_arrow_table_by_default(small_db: str) -> None:
    table = pit_sdk.read_sql(small_db, "SELECT id, code FROM claims WHERE id < 3 ORDER BY id")

    assert isinstance(table, pa.Table)
    assert table.to_pydict() == {"id": [0, 1, 2], "code": ["C0", "C1", "C2"]}


# connectorx builds its DataFrame with pandas internals that pandas 3 deprecates.
@pytest.mark.filterwarnings("ignore:make_block is deprecated")
def test_read_sql_as_pandas(small_db: str) -> None:
    frame = pit_sdk.read_sql(small_db, "SELECT id FROM claims ORDER BY id", "pandas")

    assert isinstance(frame, pd.DataFrame)
    assert frame["id"].tolist() == list(range(10))


def test_read_sql_as_polars(small_db: str) -> None:
    frame = pit_sdk.read_sql(small_db, "SELECT SUM(id) AS total FROM claims", return_type="polars")

    assert isinstance(frame, pl.DataFrame)
    assert frame["total"].to_list() == [45]


def test_read_sql_refuses_an_unknown_return_type(small_db: str) -> None:
    with pytest.raises(ValueError, match="return_type 'dask' is not one of arrow, pandas, polars"):
        pit_sdk.read_sql(small_db, "SELECT 1", return_type="dask")


def test_read_sql_passes_the_database_error_on(small_db: str) -> None:
    with pytest.raises(RuntimeError, match="no such table"):
        pit_sdk.read_sql(small_db, "SELECT * FROM nowhere")


def test_output_sql_streams_to_parquet_in_row_groups(
    big_db: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = ReadSqlSpy(monkeypatch)

    path = pit_sdk.output_sql(big_db, "SELECT * FROM claims ORDER BY id", "claims")

    assert path == str(data_dir / "claims.parquet")
    assert spy.return_types == ["arrow_stream"]
    metadata = pq.ParquetFile(path).metadata
    assert metadata.num_rows == BIG_ROWS
    assert metadata.num_row_groups == BIG_ROWS // _sql.DEFAULT_BATCH_ROWS
    table = pit_sdk.read_input("claims")
    assert table.schema.names == ["id", "code", "amount"]
    assert pc.sum(table["id"]).as_py() == BIG_ROWS * (BIG_ROWS - 1) // 2
    assert table["code"][98].as_py() == "C1"
    assert sorted(p.name for p in data_dir.iterdir()) == ["claims.parquet"]


def test_output_sql_row_groups_follow_batch_size(big_db: str, data_dir: Path) -> None:
    path = pit_sdk.output_sql(big_db, "SELECT id FROM claims", "ids", batch_size=30_000)

    metadata = pq.ParquetFile(path).metadata
    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    assert sum(sizes) == BIG_ROWS
    assert len(sizes) >= BIG_ROWS // 30_000
    assert max(sizes) <= 30_000


def test_output_sql_of_no_rows_writes_the_schema(small_db: str, data_dir: Path) -> None:
    pit_sdk.output_sql(small_db, "SELECT id, code FROM claims WHERE id < 0", "nothing.parquet")

    table = pit_sdk.read_input("nothing")
    assert table.num_rows == 0
    assert table.schema.names == ["id", "code"]


def test_a_failed_query_leaves_no_file(small_db: str, data_dir: Path) -> None:
    with pytest.raises(RuntimeError, match="no such table"):
        pit_sdk.output_sql(small_db, "SELECT * FROM nowhere", "claims")

    assert list(data_dir.iterdir()) == []


def test_without_streaming_connectorx_output_sql_says_it_reads_whole(
    big_db: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connectorx, "__version__", "0.3.3")
    spy = ReadSqlSpy(monkeypatch)

    with pytest.warns(RuntimeWarning, match=r"connectorx 0\.3\.3 cannot stream"):
        path = pit_sdk.output_sql(big_db, "SELECT id FROM claims", "ids", batch_size=50_000)

    assert spy.return_types == ["arrow"]
    metadata = pq.ParquetFile(path).metadata
    assert (metadata.num_rows, metadata.num_row_groups) == (BIG_ROWS, 4)


@pytest.mark.parametrize(
    ("version", "streams"),
    [("0.4.6", True), ("0.4.4", True), ("1.0.0", True), ("0.4.3", False), ("0.3.3", False)],
)
def test_streaming_connectorx_versions(
    version: str, streams: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connectorx, "__version__", version)

    assert _sql.streams(connectorx) is streams


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, True])
def test_output_sql_refuses_a_batch_size_that_is_not_a_positive_int(
    small_db: str, data_dir: Path, batch_size: Any
) -> None:
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        pit_sdk.output_sql(small_db, "SELECT 1", "x", batch_size=batch_size)


@pytest.mark.parametrize("name", ["../claims", "/tmp/claims", "a/b", ".."])
def test_output_sql_stays_in_the_data_dir(small_db: str, data_dir: Path, name: str) -> None:
    with pytest.raises(ValueError, match="bad data file name"):
        pit_sdk.output_sql(small_db, "SELECT * FROM claims", name)

    assert list(data_dir.iterdir()) == []
    assert [p.name for p in data_dir.parent.iterdir()] == ["data"]


def test_output_sql_without_pit_data_dir(small_db: str) -> None:
    with pytest.raises(RuntimeError, match=r"PIT_DATA_DIR is not set: output_sql\(\) must run"):
        pit_sdk.output_sql(small_db, "SELECT 1", "x")


@pytest.mark.parametrize(
    ("conn", "url"),
    [
        (
            "sqlserver://sa:pw@db.example.com:1433/warehouse",
            "mssql://sa:pw@db.example.com:1433/warehouse",
        ),
        (
            "sqlserver://sa:pw@db:1433?database=warehouse&encrypt=true",
            "mssql://sa:pw@db:1433/warehouse?encrypt=true",
        ),
        ("SQLSERVER://sa:pw@db/warehouse", "mssql://sa:pw@db/warehouse"),
        ("mssql://sa:pw@db:1433/warehouse", "mssql://sa:pw@db:1433/warehouse"),
        ("postgresql://u:p@h:5432/d", "postgresql://u:p@h:5432/d"),
        ("sqlite:////abs/path.db", "sqlite:///abs/path.db"),
        ("sqlite://cwd.db", "sqlite://cwd.db"),
    ],
)
def test_pit_connection_strings_become_connectorx_urls(conn: str, url: str) -> None:
    assert _sql.connectorx_url(conn) == url


def test_a_relative_sqlite_path_is_in_the_workspace_as_for_sql_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace, snapshot = tmp_path / "workspace", tmp_path / "snapshot"
    snapshot.mkdir()
    (workspace / "db").mkdir(parents=True)
    sqlite_database(workspace / "db" / "w.db", 3)
    monkeypatch.setenv("PIT_WORKSPACE", str(workspace))
    monkeypatch.chdir(snapshot)  # a task runs in its run's snapshot of the project
    assert _sql.connectorx_url("sqlite:///db/w.db") == f"sqlite://{workspace}/db/w.db"
    assert pit_sdk.read_sql("sqlite:///db/w.db", "SELECT * FROM claims").num_rows == 3
    assert not (snapshot / "db").exists()


def test_outside_pit_a_relative_sqlite_path_is_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert _sql.connectorx_url("sqlite:///w.db") == f"sqlite://{tmp_path}/w.db"
