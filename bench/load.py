"""Bulk loading: pit's loader against each database's own bulk path, and its memory.

The file: 1,000,000 rows (100,000 with --quick) of six columns (id int64, amount float64, label
string, at timestamp, flag bool, qty int32) written by pyarrow with its defaults (row groups of
up to 1Mi rows), and the same rows as CSV for psql.

pit's side is what a load task does: a fresh Python process opens a `Database` and runs
`load_parquet` in its worker thread (`pit.connectors`). The process times its own load, from
connecting to the commit, with the libraries already imported: interpreter start-up and imports
(~0.3 s, reported) are pit's start-up cost, which startup.py measures.

PostgreSQL (a throwaway cluster this benchmark starts, as tests/conftest.py does):
  pit:  mode truncate_and_load into table pit_rows: one COPY FROM STDIN, CSV written by Arrow;
  psql: `psql -c "TRUNCATE psql_rows" -c "\\copy psql_rows FROM 'rows.csv' (FORMAT csv)"`
        into an identical table; its whole process (its start-up is milliseconds).
SQLite (a new database file each round, the table created beforehand):
  pit:  mode append;
  bare: a Python script: pyarrow `iter_batches`, the timestamps cast to ISO text by Arrow (the
        text pit stores), `executemany` of each batch's rows, all in one transaction; timed like
        pit's, from connecting to the commit.
After the rounds both sides' tables must hold exactly the same rows (EXCEPT both ways).

Memory: the peak RSS (VmHWM, read by the loading process itself) of pit's loads above, and of
the same loads of a file 5x larger (the same row groups, five times as many).

Targets: PostgreSQL <= 1.5x psql, SQLite <= 1.3x the bare script; peak RSS < 300 MB and the 5x
file adds < 50 MB (MiB here, the stricter reading), for each database.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from _harness import (
    PYTHON,
    Measure,
    Report,
    child_env,
    cleanup,
    common_args,
    fmt_seconds,
    make_tmp,
    median,
    rounds,
    run_timed,
    spread,
    table,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: tests.pgcluster
from tests.pgcluster import POSTGRES_BIN_GLOB, PostgresCluster, postgres_bin_dir

TARGET_POSTGRES = 1.5
TARGET_SQLITE = 1.3
TARGET_PEAK_MIB = 300.0
TARGET_GROWTH_MIB = 50.0
POSTGRES_COLUMNS = (
    "id BIGINT, amount DOUBLE PRECISION, label TEXT, at TIMESTAMP, flag BOOLEAN, qty INTEGER"
)
SQLITE_COLUMNS = "id INTEGER, amount REAL, label TEXT, at TEXT, flag INTEGER, qty INTEGER"

PIT_LOADER = '''\
"""Load a Parquet file as a pit load task does; write the load's time and this process's peak
RSS (VmHWM) to a JSON file."""
import json, sys, time

started = time.perf_counter()
from pathlib import Path

import pyarrow.parquet, trio
from pit.connectors.loader import load_parquet
from pit.spec.dag import LoadMode
from pit.connectors.sql import Database
from pit.connectors.target import parse_target

url, parquet, table, mode, result = sys.argv[1:]
if url.startswith("postgresql:"):  # what the load path would import on its first use
    import psycopg, pyarrow.csv
imported = time.perf_counter()


async def load():
    async with await Database.connect(parse_target(url, Path(parquet).parent)) as database:
        return await database.call(
            lambda c: load_parquet(c, Path(parquet), table, schema=None, mode=LoadMode(mode))
        )


rows = trio.run(load)
loaded = time.perf_counter()
with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
Path(result).write_text(json.dumps(
    {"rows": rows, "imports": imported - started, "load": loaded - imported, "peak_kib": peak}
))
'''

BARE_SQLITE = '''\
"""The baseline: the same rows into SQLite with executemany, in one transaction."""
import json, sqlite3, sys, time

started = time.perf_counter()
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

parquet, database, result = sys.argv[1:]
imported = time.perf_counter()
connection = sqlite3.connect(database)
rows = 0
with connection:  # one transaction, committed at the end
    for batch in pq.ParquetFile(parquet).iter_batches():
        columns = [c.cast(pa.string()) if pa.types.is_timestamp(c.type) else c for c in batch]
        connection.executemany(
            "INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?)", zip(*(c.to_pylist() for c in columns))
        )
        rows += batch.num_rows
connection.close()
loaded = time.perf_counter()
Path(result).write_text(json.dumps(
    {"rows": rows, "imports": imported - started, "load": loaded - imported}
))
'''


def main() -> int:
    args = common_args(__doc__.splitlines()[0]).parse_args()
    rows = 100_000 if args.quick else 1_000_000
    repeat = args.repeat or (2 if args.quick else 5)
    tmp = make_tmp("load", args)
    try:
        return _run(tmp, args, rows, repeat)
    finally:
        cleanup(tmp, args)


def _run(tmp: Path, args: argparse.Namespace, rows: int, repeat: int) -> int:
    env = child_env(tmp, pyc_cache=not args.no_pyc_cache)
    print(f"load: {rows:,} rows, {repeat} rounds; writing the files", file=sys.stderr)
    files = write_files(tmp, rows)
    cluster = start_postgres()
    try:
        return _measure(tmp, args, env, files, cluster, rows, repeat)
    finally:
        cluster.stop()


def write_files(tmp: Path, rows: int) -> dict[str, Path]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    def rows_from(start: int, count: int) -> pa.Table:
        ids = pa.array(range(start, start + count), pa.int64())
        return pa.table(
            {
                "id": ids,
                "amount": pc.multiply(ids.cast(pa.float64()), 0.25),
                "label": pc.binary_join_element_wise("customer-", ids.cast(pa.string()), ""),
                "at": pc.add(pc.multiply(ids, 1_000_000), 1_704_067_200_000_000).cast(
                    pa.timestamp("us")
                ),
                "flag": pc.equal(pc.bit_wise_and(ids, 1), 0),
                "qty": pc.bit_wise_and(ids, 1023).cast(pa.int32()),
            }
        )

    files = {"parquet": tmp / "rows.parquet", "csv": tmp / "rows.csv", "x5": tmp / "rows5.parquet"}
    data = rows_from(0, rows)
    pq.write_table(data, files["parquet"])
    pacsv.write_csv(data, files["csv"], write_options=pacsv.WriteOptions(include_header=False))
    with pq.ParquetWriter(files["x5"], data.schema) as writer:
        for part in range(5):  # the same row groups, five times as many
            writer.write_table(rows_from(part * rows, rows))
    return files


def _measure(
    tmp: Path,
    args: argparse.Namespace,
    env: dict[str, str],
    files: dict[str, Path],
    cluster: PostgresCluster,
    rows: int,
    repeat: int,
) -> int:
    bench_sql(
        cluster,
        f"CREATE TABLE pit_rows ({POSTGRES_COLUMNS}); CREATE TABLE psql_rows ({POSTGRES_COLUMNS})",
    )
    loader, bare = tmp / "pit_loader.py", tmp / "bare_sqlite.py"
    loader.write_text(PIT_LOADER)
    bare.write_text(BARE_SQLITE)
    result = tmp / "result.json"
    inside: dict[str, list[float]] = {}
    """Figures the children report: each load's own time, imports, peak RSS."""
    whole: dict[str, list[float]] = {}

    def child(name: str, argv: Sequence[str], expect: int) -> float:
        seconds = run_timed([PYTHON, *argv, str(result)], env=env)
        figures = json.loads(result.read_text())
        result.unlink()
        if figures["rows"] != expect:
            raise SystemExit(f"{name} loaded {figures['rows']} rows, not {expect}")
        whole.setdefault(name, []).append(seconds)
        inside.setdefault(f"{name} imports", []).append(figures["imports"])
        if "peak_kib" in figures:
            inside.setdefault(f"{name} peak", []).append(figures["peak_kib"] / 1024)
        inside.setdefault(name, []).append(figures["load"])
        return float(figures["load"])

    def pit_postgres(parquet: Path, name: str, expect: int) -> Measure:
        mode = "truncate_and_load"
        return lambda: child(
            name, [str(loader), cluster.url(BENCH_DB), str(parquet), "pit_rows", mode], expect
        )

    def psql() -> float:
        copy = f"\\copy psql_rows FROM '{files['csv']}' WITH (FORMAT csv)"
        argv = [*cluster.psql_argv(BENCH_DB), "-c", "TRUNCATE psql_rows", "-c", copy]
        seconds = run_timed(argv, env=env)
        whole.setdefault("psql", []).append(seconds)
        return seconds

    def fresh_sqlite(path: Path) -> Path:
        path.unlink(missing_ok=True)
        connection = sqlite3.connect(path)
        connection.execute(f"CREATE TABLE rows ({SQLITE_COLUMNS})")
        connection.close()
        return path

    pit_db, bare_db = tmp / "pit.sqlite", tmp / "bare.sqlite"

    def pit_sqlite(parquet: Path, name: str, expect: int) -> Measure:
        def once() -> float:
            url = f"sqlite:///{fresh_sqlite(pit_db)}"
            return child(name, [str(loader), url, str(parquet), "rows", "append"], expect)

        return once

    def bare_sqlite() -> float:
        argv = [str(bare), str(files["parquet"]), str(fresh_sqlite(bare_db))]
        return child("bare sqlite", argv, rows)

    measurements = {
        "pit postgres": pit_postgres(files["parquet"], "pit postgres", rows),
        "psql": psql,
        "pit sqlite": pit_sqlite(files["parquet"], "pit sqlite", rows),
        "bare sqlite": bare_sqlite,
    }
    for once in measurements.values():  # warm-up: byte-code cache, page cache, the cluster
        once()
    for figures in (inside, whole):
        figures.clear()
    samples = rounds(measurements, repeat)
    check_same_rows(cluster, pit_db, bare_db)

    print("  the 5x file, once each", file=sys.stderr)
    pit_postgres(files["x5"], "pit postgres x5", rows * 5)()
    pit_sqlite(files["x5"], "pit sqlite x5", rows * 5)()

    med = {name: median(values) for name, values in inside.items()}
    print()
    print(
        table(
            ["measurement", "load (in-process)", "min..max", "whole process", "peak RSS"],
            [
                [
                    name,
                    fmt_seconds(med[name]) if name in med else "-",
                    spread(inside[name]) if name in inside else "-",
                    fmt_seconds(median(whole[name])),
                    f"{med[f'{name} peak']:.0f} MiB" if f"{name} peak" in med else "-",
                ]
                for name in whole
            ],
        )
    )
    report = Report("load", quick=args.quick)
    psql_median = median(samples["psql"])
    pg_ratio = med["pit postgres"] / psql_median
    report.check(
        f"PostgreSQL, {rows:,} rows, pit load vs psql \\copy",
        pg_ratio,
        TARGET_POSTGRES,
        detail=f"{fmt_seconds(med['pit postgres'])} vs {fmt_seconds(psql_median)}; whole "
        f"processes {median(whole['pit postgres']) / median(whole['psql']):.2f}x",
    )
    sqlite_ratio = med["pit sqlite"] / med["bare sqlite"]
    report.check(
        f"SQLite, {rows:,} rows, pit load vs bare executemany",
        sqlite_ratio,
        TARGET_SQLITE,
        detail=f"{fmt_seconds(med['pit sqlite'])} vs {fmt_seconds(med['bare sqlite'])}; whole "
        f"processes {median(whole['pit sqlite']) / median(whole['bare sqlite']):.2f}x",
    )
    for database in ("postgres", "sqlite"):
        peak, peak5 = med[f"pit {database} peak"], med[f"pit {database} x5 peak"]
        report.check(
            f"{database}: peak RSS of the loading process, {rows:,} rows",
            peak,
            TARGET_PEAK_MIB,
            unit=" MiB",
        )
        report.check(
            f"{database}: peak RSS added by a file 5x larger",
            peak5 - peak,
            TARGET_GROWTH_MIB,
            unit=" MiB",
            detail=f"{peak5:.0f} MiB for {rows * 5:,} rows",
        )
    report.info.append(
        f"pit's imports before loading: {fmt_seconds(med['pit postgres imports'])} "
        "(start-up, not counted in the load)"
    )
    report.info.append("both sides' tables hold the same rows (PostgreSQL and SQLite)")
    return report.finish(args.json)


def check_same_rows(cluster: PostgresCluster, pit_db: Path, bare_db: Path) -> None:
    """Both sides loaded the very same rows (or the comparison means nothing)."""
    differing = bench_sql(
        cluster,
        "SELECT (SELECT count(*) FROM (TABLE pit_rows EXCEPT ALL TABLE psql_rows) a) "
        "+ (SELECT count(*) FROM (TABLE psql_rows EXCEPT ALL TABLE pit_rows) b)",
    )
    if differing.strip() != "0":
        raise SystemExit(f"PostgreSQL: pit's and psql's tables differ in {differing} rows")
    connection = sqlite3.connect(pit_db)
    connection.execute("ATTACH DATABASE ? AS bare", (str(bare_db),))
    (count,) = connection.execute(
        "SELECT (SELECT count(*) FROM (SELECT * FROM main.rows EXCEPT SELECT * FROM bare.rows))"
        " + (SELECT count(*) FROM (SELECT * FROM bare.rows EXCEPT SELECT * FROM main.rows))"
    ).fetchone()
    connection.close()
    if count:
        raise SystemExit(f"SQLite: pit's and the bare script's tables differ in {count} rows")


# --- a throwaway PostgreSQL cluster (tests/pgcluster.py, as the tests start one) --------------

BENCH_DB = "bench"


def start_postgres() -> PostgresCluster:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise SystemExit(f"no PostgreSQL server binaries ({POSTGRES_BIN_GLOB}, or initdb on PATH)")
    started = time.perf_counter()
    cluster = PostgresCluster(bin_dir)
    try:
        cluster.start()
        cluster.admin(f"CREATE DATABASE {BENCH_DB}")
    except RuntimeError as exc:
        cluster.stop()
        raise SystemExit(str(exc)) from None
    took = time.perf_counter() - started
    print(f"  PostgreSQL {bin_dir.parent.name} up in {took:.1f}s", file=sys.stderr)
    return cluster


def bench_sql(cluster: PostgresCluster, sql: str) -> str:
    """Run `sql` in the bench database with psql; its unaligned output."""
    done = subprocess.run(
        [*cluster.psql_argv(BENCH_DB), "-A", "-t", "-c", sql],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"psql failed: {sql}\n{done.stderr}")
    return done.stdout


if __name__ == "__main__":
    sys.exit(main())
