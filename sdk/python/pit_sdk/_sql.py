"""Database reads in the task process, through ConnectorX (Rust drivers, no ODBC).

`read_sql` returns the whole result in memory; `output_sql` streams it to Parquet in the data
directory, one record batch (= one Parquet row group) at a time. connectorx and pyarrow are
imported lazily, when one of these functions runs.
"""

from __future__ import annotations

import re
import urllib.parse
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pit_sdk._data import write_batches
from pit_sdk._environment import import_optional, parquet_path, workspace

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl
    import pyarrow as pa

RETURN_TYPES = {
    "arrow": ("pyarrow",),
    "pandas": ("pandas",),
    "polars": ("pyarrow", "polars"),
}
"""read_sql's return types, and the libraries (besides connectorx) each one needs."""

DEFAULT_BATCH_ROWS = 100_000
"""Rows per record batch, and so per Parquet row group, that output_sql writes."""

STREAMING_CONNECTORX = (0, 4, 4)
"""The first connectorx whose read_sql has `return_type="arrow_stream"`."""


def read_sql(
    conn: str, query: str, return_type: str = "arrow"
) -> pa.Table | pd.DataFrame | pl.DataFrame:
    """Run `query` on the database at the connection string `conn` and return the whole result:
    a pyarrow Table (`return_type="arrow"`), a pandas DataFrame (`"pandas"`) or a polars
    DataFrame (`"polars"`), as connectorx builds them.

    For results too big for memory, use `output_sql`, which streams to a Parquet file.
    `sqlite:///x.db` is `x.db` in pit's workspace, as for SQL tasks (see `connectorx_url`).
    """
    needs = RETURN_TYPES.get(return_type)
    if needs is None:
        raise ValueError(
            f"read_sql(): return_type {return_type!r} is not one of {', '.join(RETURN_TYPES)}"
        )
    connectorx = import_optional("connectorx", "read_sql", "sql")
    for module in needs:
        import_optional(module, "read_sql", "sql" if module == "pyarrow" else module)
    result: pa.Table | pd.DataFrame | pl.DataFrame = connectorx.read_sql(
        connectorx_url(conn), query, return_type=return_type
    )
    return result


def output_sql(conn: str, query: str, name: str, *, batch_size: int = DEFAULT_BATCH_ROWS) -> str:
    """Run `query` on the database at `conn` and stream its rows to `$PIT_DATA_DIR/<name>.parquet`
    (returned), `batch_size` rows per row group, never holding the whole result in memory.

    With a connectorx older than 0.4.4 (no streaming), the result is read whole and a
    RuntimeWarning says so.
    """
    path = parquet_path(name, "output_sql")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"output_sql(): batch_size must be a positive int, not {batch_size!r}")
    connectorx = import_optional("connectorx", "output_sql", "sql")
    pa = import_optional("pyarrow", "output_sql", "sql")
    url = connectorx_url(conn)
    if streams(connectorx):
        reader = connectorx.read_sql(url, query, return_type="arrow_stream", batch_size=batch_size)
    else:
        warnings.warn(
            f"connectorx {connectorx_version(connectorx)} cannot stream query results "
            f"(return_type='arrow_stream' needs connectorx>="
            f"{'.'.join(map(str, STREAMING_CONNECTORX))}): output_sql({name!r}) holds the "
            "whole result in memory before writing it; upgrade connectorx to stream",
            RuntimeWarning,
            stacklevel=2,
        )
        table = connectorx.read_sql(url, query, return_type="arrow")
        reader = pa.RecordBatchReader.from_batches(table.schema, _batches(table, batch_size))
    write_batches(path, reader, "output_sql")
    return str(path)


def _batches(table: pa.Table, rows: int) -> Iterator[pa.RecordBatch]:
    """`table` in batches of `rows` rows (its chunks as connectorx made them can be smaller)."""
    for offset in range(0, table.num_rows, rows):
        yield from table.slice(offset, rows).combine_chunks().to_batches()


def connectorx_version(connectorx: Any) -> str:
    return str(getattr(connectorx, "__version__", "(unknown version)"))


def streams(connectorx: Any) -> bool:
    """Whether this connectorx can return an Arrow record batch stream."""
    found = re.match(r"(\d+)\.(\d+)\.(\d+)", connectorx_version(connectorx))
    if found is None:  # a development build with no release number: assume it is recent
        return True
    return tuple(int(part) for part in found.groups()) >= STREAMING_CONNECTORX


def connectorx_url(conn: str) -> str:
    """`conn` as connectorx spells it.

    pit's connection strings call SQL Server `sqlserver://user:password@host:port/database`
    (or `...?database=name`); connectorx wants `mssql://user:password@host:port/database`.
    pit's `sqlite:///x.db` is `x.db` in the workspace (PIT_WORKSPACE), as for SQL tasks and
    load_data, and `sqlite:////abs/x.db` an absolute path; connectorx wants `sqlite://` followed
    by the path. Every other scheme (postgresql://, mssql://, mysql://, ...) and connectorx's
    own `sqlite://relative.db` pass unchanged.
    """
    scheme, separator, rest = conn.partition("://")
    if separator and scheme.lower() == "sqlite" and rest.startswith("/"):
        path = rest[1:]
        return "sqlite://" + (path if path.startswith("/") else str(workspace() / path))
    if not separator or scheme.lower() != "sqlserver":
        return conn
    url = "mssql://" + rest
    parts = urllib.parse.urlsplit(url)
    if parts.path.strip("/"):
        return url
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    database = [value for key, value in query if key.lower() == "database"]
    if not database:
        return url
    rest_of_query = [(key, value) for key, value in query if key.lower() != "database"]
    return urllib.parse.urlunsplit(
        parts._replace(
            path="/" + urllib.parse.quote(database[0], safe=""),
            query=urllib.parse.urlencode(rest_of_query),
        )
    )
