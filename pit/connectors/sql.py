"""Databases for SQL tasks and the bulk loader: blocking drivers behind one small async interface.

Each driver runs in a worker thread (`trio.to_thread`). Cancelling a call (a task timeout, a
stopped run) interrupts the statement in the database itself (SQLite and DuckDB `interrupt`,
PostgreSQL's cancel request, SQL Server's cancel) and waits for the driver to return before
the connection is closed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import trio

from pit.connectors.sqlparams import Style, statements, uses_params, values
from pit.connectors.target import ConnectorError, Dialect, Target
from pit.spec.params import Param

if TYPE_CHECKING:
    import pyarrow as pa

T = TypeVar("T")
BATCH_ROWS = 65_536
_INTERRUPT_WAIT = 10.0
"""Seconds to wait for a driver to return after its statement was interrupted."""
_LOGIN_TIMEOUT = 15


class BlockingConnection(Protocol):
    """One open connection of a blocking driver. Only `interrupt` may be called from another
    thread while a call runs."""

    dialect: Dialect
    style: Style
    """How its driver writes a named parameter (`pit.connectors.sqlparams`)."""
    raw: Any
    """The driver's DB-API connection, for the bulk loader."""

    def execute_script(self, sql: str) -> int | None:
        """Run a whole script (many statements). Rows affected, as the driver can tell: SQLite
        counts the whole script; PostgreSQL and SQL Server the last statement that reports
        one; DuckDB None."""
        ...

    def execute_bound(self, sql: str, values: Mapping[str, object]) -> int | None:
        """Run one statement with its parameters (in `style`); rows affected, if told."""
        ...

    def query_batches(
        self, sql: str, values: Mapping[str, object] | None = None
    ) -> Iterator[pa.RecordBatch]:
        """The query's rows as Arrow batches, at least one (empty when there are no rows, so
        the columns are known); ConnectorError for a statement that gives no result."""
        ...

    def interrupt(self) -> None: ...

    def close(self) -> None: ...


def open_blocking(target: Target) -> BlockingConnection:
    """Connect; a refusal becomes a ConnectorError that names the database."""
    try:
        match target.dialect:
            case Dialect.SQLITE:
                return _Sqlite(target)
            case Dialect.DUCKDB:
                return _DuckDb(target)
            case Dialect.POSTGRES:
                return _Postgres(target)
            case Dialect.MSSQL:
                return _Mssql(target)
    except ConnectorError:
        raise
    except Exception as exc:  # each driver has its own error classes; all mean "cannot connect"
        raise ConnectorError(f"cannot connect to {target.describe()}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    """Why a driver could not connect. python-tds raises a bare TimeoutError after retrying a
    refused connection; the reason (`Connection refused`) is in its cause."""
    reason = str(exc) or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if cause is None:
        return reason
    why = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(cause)
    return reason if not why or why in reason else f"{reason} ({why})"


class Database:
    """An open connection, used from trio. Calls are serialised; each runs in a worker thread."""

    def __init__(self, connection: BlockingConnection) -> None:
        self.connection = connection
        self._lock = trio.Lock()
        self._idle = threading.Event()
        self._idle.set()

    @classmethod
    async def connect(cls, target: Target) -> Database:
        return cls(await trio.to_thread.run_sync(open_blocking, target))

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def call(self, function: Callable[[BlockingConnection], T]) -> T:
        """Run `function(connection)` in a worker thread; on cancellation interrupt it in the
        database, wait for the driver to give up, then let the cancellation through.

        The interrupt reaches only a statement that is running: work of many statements (a
        load) should also call `trio.from_thread.check_cancelled()` between them."""
        async with self._lock:
            self._idle.clear()

            def job() -> T:
                try:
                    return function(self.connection)
                finally:
                    self._idle.set()

            try:
                return await trio.to_thread.run_sync(job, abandon_on_cancel=True)
            except trio.Cancelled:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(self.connection.interrupt)
                    await trio.to_thread.run_sync(self._idle.wait, _INTERRUPT_WAIT)
                raise

    async def execute_script(
        self, sql: str, params: Mapping[str, Param] | None = None
    ) -> int | None:
        """Run a script; the statements that use the run's `params` (`:name`) each on their
        own with them bound, the others together as they were written."""
        if not params or not uses_params(sql, params):
            return await self.call(lambda connection: connection.execute_script(sql))
        return await self.call(lambda connection: _execute_with_params(connection, sql, params))

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self._idle.wait, _INTERRUPT_WAIT)
            await trio.to_thread.run_sync(self.connection.close)


def _execute_with_params(
    connection: BlockingConnection, sql: str, params: Mapping[str, Param]
) -> int | None:
    rows: int | None = None
    plain: list[str] = []
    for statement in [*statements(sql, params, connection.style), None]:
        if (statement is None or statement.names) and "".join(plain).strip():
            rows = connection.execute_script("".join(plain))
            plain.clear()
        if statement is None:
            break
        if statement.names:
            bound = values(params, statement.names)
            rows = connection.execute_bound(statement.sql, bound)
        else:
            plain.append(statement.sql)
    return rows


def bound_query(
    connection: BlockingConnection, sql: str, params: Mapping[str, Param]
) -> tuple[str, Mapping[str, object] | None]:
    """A save task's query in the driver's style, and the values it binds (None: it uses no
    param)."""
    if not params or not uses_params(sql, params):
        return sql, None
    found = statements(sql, params, connection.style)
    if len(found) != 1:
        raise ConnectorError("the query of a save task must be one statement")
    return found[0].sql, values(params, found[0].names)


# --- drivers ---------------------------------------------------------------------------------

_NO_RESULT = "the query of a save task gave no result (is it a SELECT?)"


def _batches_from_cursor(cursor: Any) -> Iterator[pa.RecordBatch]:
    """Arrow batches from a DB-API cursor, with the column types of the first batch; a query
    without rows gives one empty batch of text columns (its names, at least, are known)."""
    import pyarrow as pa

    if cursor.description is None:
        raise ConnectorError(_NO_RESULT)
    names = [column[0] for column in cursor.description]
    schema: pa.Schema | None = None
    while rows := cursor.fetchmany(BATCH_ROWS):
        columns = list(zip(*rows, strict=True))
        if schema is None:
            arrays = [pa.array(column) for column in columns]
            # A column of nulls only in the first batch is read as text.
            arrays = [a.cast(pa.string()) if a.type == pa.null() else a for a in arrays]
            batch = pa.RecordBatch.from_arrays(arrays, names=names)
            schema = batch.schema
        else:
            arrays = [pa.array(c, type=f.type) for c, f in zip(columns, schema, strict=True)]
            batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
        yield batch
    if schema is None:
        yield pa.RecordBatch.from_arrays([pa.array([], pa.string()) for _ in names], names=names)


class _Sqlite:
    dialect = Dialect.SQLITE
    style = Style.COLON

    def __init__(self, target: Target) -> None:
        path = str(target.path) if target.path else ":memory:"
        # Autocommit (isolation_level=None): a script's own BEGIN/COMMIT decide transactions.
        import sqlite3  # here: only SQLite targets need it, and it costs every start-up

        self.raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def execute_script(self, sql: str) -> int | None:
        before = self.raw.total_changes
        self.raw.executescript(sql)
        return self.raw.total_changes - before

    def execute_bound(self, sql: str, values: Mapping[str, object]) -> int | None:
        before = self.raw.total_changes
        self.raw.execute(sql, values)
        return self.raw.total_changes - before

    def query_batches(
        self, sql: str, values: Mapping[str, object] | None = None
    ) -> Iterator[pa.RecordBatch]:
        return _batches_from_cursor(self.raw.execute(sql, values or {}))

    def interrupt(self) -> None:
        self.raw.interrupt()

    def close(self) -> None:
        self.raw.close()


class _DuckDb:
    dialect = Dialect.DUCKDB
    style = Style.DOLLAR

    def __init__(self, target: Target) -> None:
        import duckdb

        self.raw = duckdb.connect(str(target.path) if target.path else ":memory:")

    def execute_script(self, sql: str) -> int | None:
        self.raw.execute(sql)
        return None

    def execute_bound(self, sql: str, values: Mapping[str, object]) -> int | None:
        self.raw.execute(sql, dict(values))
        return None

    def query_batches(
        self, sql: str, values: Mapping[str, object] | None = None
    ) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        relation = self.raw.sql(sql, params=dict(values)) if values else self.raw.sql(sql)
        if relation is None:
            raise ConnectorError(_NO_RESULT)
        reader = relation.to_arrow_reader(BATCH_ROWS)
        empty = True
        for batch in reader:
            empty = False
            yield batch
        if empty:  # keep the columns and their types
            yield pa.RecordBatch.from_pylist([], schema=reader.schema)

    def interrupt(self) -> None:
        self.raw.interrupt()

    def close(self) -> None:
        self.raw.close()


class _Postgres:
    dialect = Dialect.POSTGRES
    style = Style.PYFORMAT

    def __init__(self, target: Target) -> None:
        import psycopg
        from psycopg.conninfo import make_conninfo

        extra = {"password": target.password} if target.password else {}
        conninfo = make_conninfo(target.url, connect_timeout=_LOGIN_TIMEOUT, **extra)
        self.raw = psycopg.connect(conninfo, autocommit=True)

    def execute_script(self, sql: str) -> int | None:
        # Without parameters psycopg sends the simple-query protocol: many statements at once;
        # each statement's result is a set of its own, the first one current.
        cursor = self.raw.execute(sql.encode())
        rows = cursor.rowcount if cursor.rowcount >= 0 else None
        while cursor.nextset():
            rows = cursor.rowcount if cursor.rowcount >= 0 else rows
        return rows

    def execute_bound(self, sql: str, values: Mapping[str, object]) -> int | None:
        cursor = self.raw.execute(sql.encode(), values)
        return cursor.rowcount if cursor.rowcount >= 0 else None

    def query_batches(
        self, sql: str, values: Mapping[str, object] | None = None
    ) -> Iterator[pa.RecordBatch]:
        with self.raw.transaction(), self.raw.cursor(name="pit_save") as cursor:
            cursor.execute(sql.encode(), values)
            yield from _batches_from_cursor(cursor)

    def interrupt(self) -> None:
        self.raw.cancel_safe(timeout=_INTERRUPT_WAIT)

    def close(self) -> None:
        self.raw.close()


class _Mssql:
    dialect = Dialect.MSSQL
    style = Style.PYFORMAT

    def __init__(self, target: Target) -> None:
        import pytds

        self.raw = pytds.connect(
            dsn=target.host,
            port=target.port or 1433,
            database=target.database or None,
            user=target.user,
            password=target.password,
            login_timeout=_LOGIN_TIMEOUT,
            autocommit=True,
        )
        self._cursor: Any = None

    def execute_script(self, sql: str) -> int | None:
        rows: int | None = None
        with self.raw.cursor() as cursor:
            self._cursor = cursor
            for batch in _split_go(sql):
                cursor.execute(batch)
                rows = cursor.rowcount if cursor.rowcount >= 0 else rows
        return rows

    def execute_bound(self, sql: str, values: Mapping[str, object]) -> int | None:
        with self.raw.cursor() as cursor:
            self._cursor = cursor
            cursor.execute(sql, dict(values))
            return cursor.rowcount if cursor.rowcount >= 0 else None

    def query_batches(
        self, sql: str, values: Mapping[str, object] | None = None
    ) -> Iterator[pa.RecordBatch]:
        with self.raw.cursor() as cursor:
            self._cursor = cursor
            if values:
                cursor.execute(sql, dict(values))
            else:
                cursor.execute(sql)
            yield from _batches_from_cursor(cursor)

    def interrupt(self) -> None:
        if self._cursor is not None:
            self._cursor.cancel()

    def close(self) -> None:
        self.raw.close()


def _split_go(sql: str) -> list[str]:
    """T-SQL scripts separate batches with lines holding only `GO` (a client convention)."""
    batches: list[str] = []
    current: list[str] = []
    for line in sql.splitlines():
        if line.strip().upper() == "GO":
            batches.append("\n".join(current))
            current = []
        else:
            current.append(line)
    batches.append("\n".join(current))
    return [batch for batch in batches if batch.strip()]


def parquet_path(data_dir: Path, name: str) -> Path:
    """The Parquet file `name` (with or without `.parquet`) in the run's data directory; a name
    that would leave it (`../x`, an absolute path) is refused."""
    return data_file(data_dir, name if name.endswith(".parquet") else f"{name}.parquet")


def data_file(data_dir: Path, name: str) -> Path:
    """The file `name` directly in the run's data directory; `../x`, `a/b` or an absolute path
    is refused."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ConnectorError(f"'{name}' is not a plain file name in the run's data directory")
    return data_dir.resolve() / name
