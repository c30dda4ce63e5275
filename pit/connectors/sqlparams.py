"""A run's params in a SQL task, as bound parameters: never formatted into the SQL.

A SQL task writes `:name` for the run's param `name` (`[dag.params]`), in any dialect. pit finds
those outside string literals, quoted identifiers, comments and dollar-quoted bodies (a `::`
cast is no placeholder, and a `:word` that names no param is left as it is), splits the script
into its statements, and gives each statement that uses a param to the driver with its values
in the driver's own style: `:name` (SQLite), `$name` (DuckDB), `%(name)s` (PostgreSQL's
psycopg and SQL Server's python-tds, with every other `%` doubled). Sans-io.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Iterator, Mapping

import attrs

from pit.spec.params import Param, ParamType

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


class Style(enum.Enum):
    COLON = "colon"
    DOLLAR = "dollar"
    PYFORMAT = "pyformat"


@attrs.frozen
class Statement:
    sql: str
    """In the driver's style when `names` is not empty; as written otherwise."""
    names: tuple[str, ...]
    """The params it uses, each once."""


def statements(sql: str, params: Mapping[str, object], style: Style) -> list[Statement]:
    """The script's statements (split at `;` outside quotes and comments), each with the params
    it uses written in `style`. Empty statements are left out."""
    found = [_statement("".join(parts), params, style) for parts in _split(sql)]
    return [s for s in found if s.sql.strip()]


def uses_params(sql: str, params: Mapping[str, object]) -> bool:
    """Whether the SQL names any of `params` as `:name`."""
    return bool(params) and any(
        kind == "param" and text[1:] in params for kind, text in _tokens(sql)
    )


def values(params: Mapping[str, Param], names: tuple[str, ...]) -> dict[str, object]:
    """The values a driver binds: a date or datetime param as a date or datetime object."""
    bound: dict[str, object] = {}
    for name in names:
        param = params[name]
        value: object = param.value
        if param.type is ParamType.DATE and isinstance(value, str):
            value = dt.date.fromisoformat(value)
        elif param.type is ParamType.DATETIME and isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        bound[name] = value
    return bound


def _statement(sql: str, params: Mapping[str, object], style: Style) -> Statement:
    out: list[str] = []
    names: dict[str, None] = {}
    for kind, text in _tokens(sql):
        name = text[1:]
        if kind == "param" and name in params:
            names[name] = None
            out.append(
                {Style.COLON: f":{name}", Style.DOLLAR: f"${name}"}.get(style, f"%({name})s")
            )
        else:
            out.append(text)
    if not names:
        return Statement(sql=sql, names=())
    if style is Style.PYFORMAT:  # with parameters, every literal % must be doubled
        out = [t if t.startswith("%(") and t.endswith(")s") else t.replace("%", "%%") for t in out]
    return Statement(sql="".join(out), names=tuple(names))


def _split(sql: str) -> Iterator[list[str]]:
    """The script's text cut at each `;` that ends a statement."""
    current: list[str] = []
    for kind, text in _tokens(sql):
        current.append(text)
        if kind == "end":
            yield current
            current = []
    yield current


def _tokens(sql: str) -> Iterator[tuple[str, str]]:
    """(kind, text) pieces whose texts join back into `sql`: `param` (`:name`), `end` (`;`),
    or `text` (everything else, quoted and commented parts whole)."""
    i, n, start = 0, len(sql), 0
    while i < n:
        c = sql[i]
        if c in "'\"`":
            close = sql.find(c, i + 1)
            while close != -1 and close + 1 < n and sql[close + 1] == c:  # '' or "" inside
                close = sql.find(c, close + 2)
            i = n if close == -1 else close + 1
        elif c == "[":  # a SQL Server identifier
            close = sql.find("]", i + 1)
            i = n if close == -1 else close + 1
        elif sql.startswith("--", i):
            close = sql.find("\n", i)
            i = n if close == -1 else close + 1
        elif sql.startswith("/*", i):
            close = sql.find("*/", i + 2)
            i = n if close == -1 else close + 2
        elif c == "$" and (tag := _DOLLAR_TAG.match(sql, i)) and not _after_word(sql, i):
            close = sql.find(tag.group(0), tag.end())
            i = n if close == -1 else close + len(tag.group(0))
        elif c == ":" and (word := _NAME.match(sql, i + 1)) and not _cast(sql, i):
            if start < i:
                yield "text", sql[start:i]
            yield "param", sql[i : word.end()]
            i = start = word.end()
        elif c == ";":
            if start < i:
                yield "text", sql[start:i]
            yield "end", ";"
            i = start = i + 1
        else:
            i += 1
    if start < n:
        yield "text", sql[start:]


def _cast(sql: str, i: int) -> bool:
    """A `::` cast (PostgreSQL, DuckDB), not a placeholder."""
    return (i > 0 and sql[i - 1] == ":") or sql.startswith("::", i)


def _after_word(sql: str, i: int) -> bool:
    """`$` inside a word (an identifier such as `a$b`) opens no dollar-quoted body."""
    return i > 0 and (sql[i - 1].isalnum() or sql[i - 1] == "_")
