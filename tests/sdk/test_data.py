"""write_output and read_input: Parquet files in the run's data directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pandas.testing
import polars as pl
import polars.testing
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pit_sdk

TABLE = pa.table(
    {
        "id": pa.array([1, 2, 3], pa.int64()),
        "name": ["a", None, "ç"],
        "amount": [1.5, 2.25, None],
    }
)

BAD_NAMES = [
    "../escape",
    "../../etc/passwd",
    "/tmp/absolute",
    "sub/dir",
    "sub\\dir",
    "..",
    ".",
    "",
    ".parquet",
    "nul\0byte",
]


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_arrow_table_round_trip(data_dir: Path) -> None:
    path = pit_sdk.write_output("claims", TABLE)

    assert path == str(data_dir / "claims.parquet")
    assert files_in(data_dir) == ["claims.parquet"], "no partial file is left behind"
    assert pit_sdk.read_input("claims").equals(TABLE)


def test_a_record_batch_is_written_as_a_table(data_dir: Path) -> None:
    (batch,) = TABLE.to_batches()

    pit_sdk.write_output("batch", batch)

    assert pit_sdk.read_input("batch").equals(TABLE)


def test_a_record_batch_reader_is_written_batch_by_batch(data_dir: Path) -> None:
    batches = TABLE.to_batches(max_chunksize=1)
    reader = pa.RecordBatchReader.from_batches(TABLE.schema, batches)

    path = pit_sdk.write_output("streamed", reader)

    assert pq.ParquetFile(path).metadata.num_row_groups == 3
    assert pit_sdk.read_input("streamed").equals(TABLE)


def test_pandas_round_trip(data_dir: Path) -> None:
    frame = pd.DataFrame({"id": [1, 2, 3], "name": ["a", "b", None], "x": [0.5, None, 2.0]})

    pit_sdk.write_output("frame", frame)

    pandas.testing.assert_frame_equal(pit_sdk.read_input("frame").to_pandas(), frame)


def test_pandas_index_is_kept(data_dir: Path) -> None:
    frame = pd.DataFrame({"x": [1, 2]}, index=pd.Index(["k1", "k2"], name="key"))

    pit_sdk.write_output("indexed", frame)

    pandas.testing.assert_frame_equal(pit_sdk.read_input("indexed").to_pandas(), frame)


def test_polars_round_trip(data_dir: Path) -> None:
    frame = pl.DataFrame({"id": [1, 2, 3], "name": ["a", None, "c"], "ok": [True, False, None]})

    pit_sdk.write_output("polars", frame)

    result = pl.from_arrow(pit_sdk.read_input("polars"))
    assert isinstance(result, pl.DataFrame)
    polars.testing.assert_frame_equal(result, frame)


def test_a_name_may_carry_the_parquet_suffix(data_dir: Path) -> None:
    path = pit_sdk.write_output("claims.parquet", TABLE)

    assert path == str(data_dir / "claims.parquet")
    assert pit_sdk.read_input("claims").equals(TABLE)
    assert pit_sdk.read_input("claims.parquet").equals(TABLE)


def test_writing_again_replaces_the_file(data_dir: Path) -> None:
    pit_sdk.write_output("claims", TABLE)
    pit_sdk.write_output("claims", TABLE.slice(0, 1))

    assert pit_sdk.read_input("claims").num_rows == 1
    assert files_in(data_dir) == ["claims.parquet"]


def test_a_missing_data_dir_is_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIT_DATA_DIR", str(tmp_path / "not" / "yet"))

    path = pit_sdk.write_output("claims", TABLE)

    assert Path(path) == tmp_path / "not" / "yet" / "claims.parquet"


def test_an_output_gets_the_usual_file_mode(data_dir: Path) -> None:
    reference = data_dir / "reference"
    reference.write_bytes(b"")

    path = pit_sdk.write_output("claims", TABLE)

    assert os.stat(path).st_mode == reference.stat().st_mode


def test_something_else_than_a_table_is_refused(data_dir: Path) -> None:
    with pytest.raises(TypeError, match=r"not builtins\.list"):
        pit_sdk.write_output("claims", [{"id": 1}])

    assert files_in(data_dir) == []


def test_a_failed_write_leaves_no_file(data_dir: Path) -> None:
    def broken_batches() -> Iterator[pa.RecordBatch]:
        yield TABLE.to_batches()[0]
        raise OSError("the source went away")

    reader = pa.RecordBatchReader.from_batches(TABLE.schema, broken_batches())

    with pytest.raises(OSError, match="the source went away"):
        pit_sdk.write_output("claims", reader)

    assert files_in(data_dir) == []


def test_reading_a_missing_input_names_the_file(data_dir: Path) -> None:
    pit_sdk.write_output("other", TABLE)

    with pytest.raises(FileNotFoundError, match="no file") as raised:
        pit_sdk.read_input("claims")

    message = str(raised.value)
    assert str(data_dir / "claims.parquet") in message
    assert "other.parquet" in message


@pytest.mark.parametrize("name", BAD_NAMES)
def test_write_output_stays_in_the_data_dir(data_dir: Path, name: str) -> None:
    with pytest.raises(ValueError, match="bad data file name"):
        pit_sdk.write_output(name, TABLE)

    assert files_in(data_dir) == []
    assert files_in(data_dir.parent) == ["data"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_read_input_stays_in_the_data_dir(data_dir: Path, name: str) -> None:
    (data_dir.parent / "escape.parquet").write_bytes(b"not for you")

    with pytest.raises(ValueError, match="bad data file name"):
        pit_sdk.read_input(name)


def test_a_name_must_be_a_string(data_dir: Path) -> None:
    with pytest.raises(TypeError, match="a data file name is a str"):
        pit_sdk.write_output(data_dir / "claims", TABLE)  # type: ignore[arg-type, unused-ignore]


def test_without_pit_data_dir_the_functions_must_run_in_a_pit_task() -> None:
    with pytest.raises(RuntimeError, match=r"PIT_DATA_DIR is not set: write_output\(\) must run"):
        pit_sdk.write_output("claims", TABLE)
    with pytest.raises(RuntimeError, match=r"PIT_DATA_DIR is not set: read_input\(\) must run"):
        pit_sdk.read_input("claims")
