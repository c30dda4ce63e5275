"""Where a database is: a connection string or a structured secret, parsed into a `Target`.

Pure: no driver is imported here. Supported: `sqlite:///path`, `duckdb:///path` (relative paths
resolve against the workspace; four slashes for an absolute path), `postgresql://` /
`postgres://` (libpq URIs), and `sqlserver://` / `mssql://` (`user:password@host:port/database`,
or `?database=`).
"""

from __future__ import annotations

import enum
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

import attrs

from pit.errors import PitError


class ConnectorError(PitError):
    """Raised when a connection string or secret cannot be used, or a database refuses pit:
    the message names the database (never the password) and what to check."""


class Dialect(enum.Enum):
    SQLITE = "sqlite"
    DUCKDB = "duckdb"
    POSTGRES = "postgres"
    MSSQL = "mssql"


_SCHEMES = {
    "sqlite": Dialect.SQLITE,
    "duckdb": Dialect.DUCKDB,
    "postgresql": Dialect.POSTGRES,
    "postgres": Dialect.POSTGRES,
    "sqlserver": Dialect.MSSQL,
    "mssql": Dialect.MSSQL,
}


@attrs.frozen(kw_only=True)
class Target:
    dialect: Dialect
    path: Path | None = None
    """File of an embedded database (sqlite, duckdb); None for `:memory:`."""
    host: str = ""
    port: int | None = None
    database: str = ""
    user: str = ""
    password: str = attrs.field(default="", repr=False)
    url: str = attrs.field(default="", repr=False)
    """The libpq URI, for PostgreSQL."""

    def describe(self) -> str:
        """For messages: where the database is, without credentials."""
        if self.dialect in (Dialect.SQLITE, Dialect.DUCKDB):
            return f"{self.dialect.value} database {self.path or ':memory:'}"
        port = f":{self.port}" if self.port else ""
        return f"{self.dialect.value} database {self.database!r} on {self.host}{port}"


def parse_target(value: str | Mapping[str, str], workspace: Path) -> Target:
    """The database a secret names: a connection string, or a structured secret with host, port,
    database, user, password and a `driver` (or `type`) field naming the database."""
    if isinstance(value, str):
        return _from_url(value, workspace)
    kind = value.get("driver") or value.get("type") or ""
    dialect = _SCHEMES.get(kind.lower())
    if dialect is None:
        raise ConnectorError(
            f"structured connection secret has driver {kind!r}; set driver to one of "
            "sqlite, duckdb, postgres, sqlserver"
        )
    if dialect in (Dialect.SQLITE, Dialect.DUCKDB):
        return Target(dialect=dialect, path=_embedded_path(value.get("path", ""), workspace))
    port = value.get("port")
    target = Target(
        dialect=dialect,
        host=value.get("host", ""),
        port=int(port) if port else None,
        database=value.get("database", ""),
        user=value.get("user", ""),
        password=value.get("password", ""),
    )
    if dialect is Dialect.POSTGRES:
        target = attrs.evolve(target, url=_postgres_url(target))
    return target


def _from_url(text: str, workspace: Path) -> Target:
    scheme, sep, rest = text.partition("://")
    dialect = _SCHEMES.get(scheme.lower()) if sep else None
    if dialect is None:
        raise ConnectorError(
            f"unsupported connection string (scheme {scheme!r}); use sqlite:///, duckdb:///, "
            "postgresql://, sqlserver:// or mssql://"
        )
    if dialect in (Dialect.SQLITE, Dialect.DUCKDB):
        if not rest.startswith("/"):
            raise ConnectorError(f"write {scheme}:///path (three slashes), not {scheme}://{rest}")
        return Target(dialect=dialect, path=_embedded_path(rest[1:], workspace))
    parts = urllib.parse.urlsplit(text)
    if dialect is Dialect.POSTGRES:
        return Target(
            dialect=dialect,
            host=parts.hostname or "",
            port=parts.port,
            database=parts.path.lstrip("/"),
            user=urllib.parse.unquote(parts.username or ""),
            url=text,
        )
    query = urllib.parse.parse_qs(parts.query)
    database = parts.path.lstrip("/") or query.get("database", [""])[0]
    return Target(
        dialect=dialect,
        host=parts.hostname or "",
        port=parts.port or 1433,
        database=database,
        user=urllib.parse.unquote(parts.username or ""),
        password=urllib.parse.unquote(parts.password or ""),
    )


def _embedded_path(text: str, workspace: Path) -> Path | None:
    if text in ("", ":memory:"):
        return None
    path = Path(text)
    return path if path.is_absolute() else workspace / path


def _postgres_url(target: Target) -> str:
    quote = urllib.parse.quote
    auth = quote(target.user, safe="")
    if target.password:
        auth += ":" + quote(target.password, safe="")
    port = f":{target.port}" if target.port else ""
    return f"postgresql://{auth}@{target.host}{port}/{quote(target.database, safe='')}"
