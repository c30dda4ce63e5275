"""Which databases a SQL task's connection secret may name, checked by its text alone.

The connectors (`pit.connectors.target`) parse connection strings for real; the spec layer sits
below them and cannot import them, so the list of schemes lives here too, and a test keeps the
two the same.
"""

from __future__ import annotations

from collections.abc import Mapping

SQL_SCHEMES = ("sqlite", "duckdb", "postgresql", "postgres", "sqlserver", "mssql")
"""Schemes of a connection string (`postgresql://...`), and `driver` values of a structured one."""

_FIX = "use sqlite:///, duckdb:///, postgresql://, postgres://, sqlserver:// or mssql://"


def connection_problem(value: str | Mapping[str, str]) -> tuple[str, str] | None:
    """(message, fix) when a connection secret names no database pit can reach; else None.
    The message never repeats the value: it holds a password."""
    if isinstance(value, str):
        # Only a scheme is checked here; the rest of the string is the connectors' business.
        scheme, sep, _ = value.partition("://")
        if sep and scheme.lower() not in SQL_SCHEMES:
            return f"names an unsupported database (scheme {scheme[:20]!r})", _FIX
        return None
    kind = value.get("driver") or value.get("type")
    if kind is not None and kind.lower() not in SQL_SCHEMES:
        return (
            f"is a structured secret with driver {kind[:20]!r}",
            f"set its driver to one of {', '.join(SQL_SCHEMES)}",
        )
    return None
