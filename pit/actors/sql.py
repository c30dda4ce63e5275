"""SQL tasks, run in pit's process against their database: a script, a save (query -> Parquet)
or a load (Parquet -> table)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import BinaryIO

import attrs

from pit.connectors.sql import BlockingConnection, Database, bound_query, parquet_path
from pit.connectors.target import ConnectorError, parse_target
from pit.runners.command import InProcessLaunch, Launch, Outcome, ProcessLaunch, SqlLaunch
from pit.spec.dag import TaskType
from pit.spec.durations import format_duration
from pit.spec.params import Params


def executable(launch: Launch) -> ProcessLaunch | InProcessLaunch:
    """What a task actor can run: SQL launches become in-process executions."""
    return SqlExecution(launch=launch) if isinstance(launch, SqlLaunch) else launch


@attrs.frozen(kw_only=True)
class SqlExecution:
    launch: SqlLaunch

    async def execute(self, log: BinaryIO) -> Outcome:
        launch, task = self.launch, self.launch.task
        if launch.connection is None:
            name = launch.connection_name
            return Outcome(
                exit_code=None,
                error=(
                    f"connection secret '{name}' is not in the secrets file"
                    if name
                    else "no connection: set connection in the task or in [dag.sql]"
                ),
            )
        started = time.monotonic()  # for the log line only: the task's timing is the run's
        try:
            target = parse_target(
                launch.connection, launch.workspace, secret=launch.connection_name
            )
            log.write(f"pit: {task.type} against {target.describe()}\n".encode())
            async with await Database.connect(target) as database:
                summary = await self._run(database)
        except ConnectorError as exc:
            return Outcome(exit_code=None, error=str(exc))
        except Exception as exc:  # a driver's own error: the task failed, pit did not
            message = f"{type(exc).__name__}: {exc}".strip()
            log.write(f"pit: {message}\n".encode())
            return Outcome(exit_code=None, error=message.splitlines()[0])
        took = format_duration(time.monotonic() - started)
        log.write(f"pit: {summary} in {took}\n".encode())
        return Outcome(exit_code=None, error=None)

    async def _run(self, database: Database) -> str:
        launch, task = self.launch, self.launch.task
        sql = launch.script.read_text(encoding="utf-8") if launch.script else ""
        if task.type is TaskType.SAVE:
            assert task.sql.output is not None, "validation requires output for save tasks"
            path = parquet_path(launch.data_dir, task.sql.output)
            rows = await database.call(lambda c: save_query(c, sql, path, launch.params))
            return f"saved {rows} rows to data/{path.name}"
        if task.type is TaskType.LOAD:
            from pit.connectors.loader import load_parquet  # brings pyarrow: on use

            assert task.sql.source is not None
            assert task.sql.table is not None
            path = parquet_path(launch.data_dir, task.sql.source)
            if not path.is_file():
                raise ConnectorError(f"no file data/{path.name} to load (is a save task upstream?)")
            rows = await database.call(
                lambda c: load_parquet(
                    c, path, task.sql.table or "", schema=task.sql.schema, mode=task.sql.mode
                )
            )
            return f"loaded {rows} rows into {task.sql.table} ({task.sql.mode})"
        affected = await database.execute_script(sql, launch.params)
        return "ran the script" + (f", {affected} rows affected" if affected is not None else "")


def save_query(
    connection: BlockingConnection, sql: str, path: Path, params: Params | None = None
) -> int:
    """Stream a query's rows into a Parquet file, batch by batch; the file appears whole or not
    at all; the run's `params` it names are bound. Blocking: runs in a worker thread."""
    import pyarrow.parquet as pq

    sql, bound = bound_query(connection, sql, params or {})

    partial = path.with_name(f".{path.name}.partial")
    rows, writer = 0, None
    try:
        for batch in connection.query_batches(sql, bound):
            if writer is None:
                writer = pq.ParquetWriter(partial, batch.schema)
            writer.write_batch(batch)
            rows += batch.num_rows
        assert writer is not None, "query_batches gives at least one batch"
        writer.close()
        os.replace(partial, path)
    finally:
        if writer is not None:
            writer.close()
        partial.unlink(missing_ok=True)
    return rows
