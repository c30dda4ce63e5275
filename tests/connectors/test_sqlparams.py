"""The run's params in SQL as `:name`: found outside quotes and comments, written in each
driver's style, the script split at its statements' ends, and bound by the real drivers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pit.actors.sql import save_query
from pit.connectors.sql import Database, open_blocking
from pit.connectors.sqlparams import Style, statements, uses_params
from pit.connectors.target import Target
from pit.spec.params import Param, ParamType

from .databases import fetch_all

PARAMS = {
    "day": Param(ParamType.DATE, "2026-11-01"),
    "limit": Param(ParamType.INT, 2),
    "label": Param(ParamType.STRING, "x'); DROP TABLE t; --"),
}


def test_placeholders_are_written_in_each_style_and_nothing_else_moves() -> None:
    sql = (
        "SELECT ':day', \"a:day\", x::int -- :day\n"
        "FROM t /* :limit */ WHERE d = :day AND n < :limit AND z = :zone AND p LIKE '5%'"
    )
    (colon,) = statements(sql, PARAMS, Style.COLON)
    assert colon.names == ("day", "limit")
    assert colon.sql == sql  # SQLite's style is the one written
    (dollar,) = statements(sql, PARAMS, Style.DOLLAR)
    assert dollar.sql.endswith("WHERE d = $day AND n < $limit AND z = :zone AND p LIKE '5%'")
    assert "SELECT ':day', \"a:day\", x::int -- :day" in dollar.sql
    (pyformat,) = statements(sql, PARAMS, Style.PYFORMAT)
    assert pyformat.sql.endswith(
        "WHERE d = %(day)s AND n < %(limit)s AND z = :zone AND p LIKE '5%%'"
    )


def test_a_script_is_cut_at_its_statements_ends_only() -> None:
    sql = "INSERT INTO t VALUES (';');\nCREATE FUNCTION f() AS $$ SELECT 1; $$;\nSELECT :day"
    found = statements(sql, PARAMS, Style.COLON)
    assert [s.sql for s in found] == [
        "INSERT INTO t VALUES (';');",
        "\nCREATE FUNCTION f() AS $$ SELECT 1; $$;",
        "\nSELECT :day",
    ]
    assert [s.names for s in found] == [(), (), ("day",)]
    assert not uses_params("SELECT ':day'", PARAMS)
    assert not uses_params("SELECT :day", {})


@given(st.text(alphabet="ab:;'\"-/*$%[] \n", max_size=60))
def test_the_pieces_of_any_text_join_back_into_it(text: str) -> None:
    from pit.connectors.sqlparams import _split

    assert "".join("".join(parts) for parts in _split(text)) == text
    # ...and binding in SQLite's style (the one written) changes nothing
    params = {"a": Param(ParamType.INT, 1)}
    bound = "".join(s.sql for s in statements(text, params, Style.COLON))
    assert bound == "".join(s.sql for s in statements(text, {}, Style.COLON))


@pytest.mark.slow
async def test_each_database_binds_the_values_and_runs_the_rest_as_written(
    target: Target, tmp_path: Path
) -> None:
    script = """
    CREATE TABLE t (d DATE, n INTEGER, label VARCHAR(100));
    INSERT INTO t VALUES (:day, :limit, :label);
    INSERT INTO t VALUES (:day, 7, 'kept: as written');
    """
    async with await Database.connect(target) as database:
        await database.execute_script(script, PARAMS)
    rows = fetch_all(target, "SELECT d, n, label FROM t ORDER BY n")
    day = rows[0][0]
    assert str(day)[:10] == "2026-11-01"
    assert [(n, label) for _, n, label in rows] == [
        (2, "x'); DROP TABLE t; --"),  # a value, never SQL
        (7, "kept: as written"),
    ]
    connection = open_blocking(target)
    try:
        path = tmp_path / "out.parquet"
        count = save_query(connection, "SELECT n FROM t WHERE n <= :limit", path, PARAMS)
    finally:
        connection.close()
    assert count == 1


def test_a_date_param_is_bound_as_a_date() -> None:
    from pit.connectors.sqlparams import values

    assert values(PARAMS, ("day", "limit")) == {"day": dt.date(2026, 11, 1), "limit": 2}
