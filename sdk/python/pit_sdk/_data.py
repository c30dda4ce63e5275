"""Parquet files in the run's data directory: how tasks hand tables to each other.

A file appears under its final name only once it is complete: it is written to a hidden
`.<name>.parquet.*.partial` file beside it and renamed into place, so a task that fails (or a
query that breaks) halfway never leaves a truncated file for the next task or a `load_data`.
pyarrow is imported here lazily, when a function needs it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pit_sdk._environment import import_optional, parquet_path

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq


def write_output(name: str, data: Any) -> str:
    """Write `data` to `$PIT_DATA_DIR/<name>.parquet` and return that path.

    `data` is a pyarrow Table, RecordBatch or RecordBatchReader (written batch by batch), a
    pandas DataFrame or a polars DataFrame. An existing file of that name is replaced.
    """
    path = parquet_path(name, "write_output")
    pa = import_optional("pyarrow", "write_output", "arrow")
    if isinstance(data, pa.RecordBatchReader):
        write_batches(path, data, "write_output")
        return str(path)
    table = _as_arrow_table(data, pa)
    with parquet_writer(path, table.schema, "write_output") as writer:
        writer.write_table(table)
    return str(path)


def read_input(name: str) -> pa.Table:
    """Read `$PIT_DATA_DIR/<name>.parquet` (written by an earlier task) as a pyarrow Table."""
    path = parquet_path(name, "read_input")
    parquet = import_optional("pyarrow.parquet", "read_input", "arrow")
    if not path.is_file():
        present = sorted(p.name for p in path.parent.glob("*.parquet"))
        raise FileNotFoundError(
            f"read_input({name!r}): no file {path}. An upstream task writes it with "
            f"write_output or output_sql; files in the data directory: {present or 'none'}"
        )
    table: pa.Table = parquet.read_table(path)
    return table


def _as_arrow_table(data: Any, pa: Any) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    # A pandas or polars DataFrame can only exist if its library is already imported.
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(data, pandas.DataFrame):
        return pa.Table.from_pandas(data)
    polars = sys.modules.get("polars")
    if polars is not None and isinstance(data, polars.DataFrame):
        return data.to_arrow()
    raise TypeError(
        f"write_output() takes a pyarrow Table, RecordBatch or RecordBatchReader, a pandas "
        f"DataFrame or a polars DataFrame, not {type(data).__module__}.{type(data).__qualname__}"
    )


def write_batches(path: Path, reader: pa.RecordBatchReader, function: str) -> None:
    """Drain `reader` into `path`, one row group per non-empty batch; only one batch is held in
    memory at a time. The reader is closed at the end (an SQL cursor behind it is released)."""
    with reader, parquet_writer(path, reader.schema, function) as writer:
        for batch in reader:
            if batch.num_rows:
                writer.write_batch(batch)


@contextlib.contextmanager
def parquet_writer(path: Path, schema: pa.Schema, function: str) -> Iterator[pq.ParquetWriter]:
    """A ParquetWriter whose file becomes `path` when the block ends without an exception, and
    is removed when it raises. Each write_batch/write_table call adds one row group (or more)."""
    parquet = import_optional("pyarrow.parquet", function, "arrow")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its 0600 mode would stick to the output; pyarrow creates the file
    # with the usual umask-derived mode.
    partial = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.partial"
    try:
        with parquet.ParquetWriter(str(partial), schema) as writer:
            yield writer
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
