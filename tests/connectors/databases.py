"""Helpers for the connector tests: targets for each database, reading back, writing Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pit.connectors.sql import open_blocking
from pit.connectors.target import Target, parse_target

LOCAL = ["sqlite", "duckdb"]
ALL = [*LOCAL, "postgres"]


def make_target(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """SQLite and DuckDB files in tmp_path; PostgreSQL a fresh database of the session's
    cluster (asked for only here, so that the local databases never wait on it)."""
    match kind:
        case "sqlite":
            return parse_target("sqlite:///test.sqlite", tmp_path)
        case "duckdb":
            return parse_target("duckdb:///test.duckdb", tmp_path)
        case "postgres":
            url: str = request.getfixturevalue("fresh_postgres_url")
            return parse_target(url, tmp_path)
    raise AssertionError(kind)


def fetch_all(target: Target, sql: str) -> list[tuple[Any, ...]]:
    """All rows of a query, on a connection of its own."""
    connection = open_blocking(target)
    try:
        # A DB-API cursor: every driver has one (python-tds has no Connection.execute).
        cursor = connection.raw.cursor()
        cursor.execute(sql)
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        connection.close()


def run_script(target: Target, sql: str) -> None:
    connection = open_blocking(target)
    try:
        connection.execute_script(sql)
    finally:
        connection.close()


def write_parquet(path: Path, table: pa.Table, *, row_group_size: int | None = None) -> Path:
    pq.write_table(table, path, row_group_size=row_group_size)
    return path
