"""Where a database is: a connection string or a structured secret, parsed into a `Target`.

Pure: no driver is imported here. Supported: `sqlite:///path`, `duckdb:///path` (relative paths
resolve against the workspace; four slashes for an absolute path), `postgresql://` /
`postgres://` (libpq URIs), and `sqlserver://` / `mssql://` (`user:password@host:port/database`,
or `?database=`).

Messages name the secret (`secret` of `parse_target`), never echo its value: a string pit
cannot parse may be a whole ODBC string with its password.
"""

from __future__ import annotations

import enum
import re
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
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,30}")
_SUPPORTED = "use sqlite:///, duckdb:///, postgresql://, sqlserver:// or mssql://"


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


def parse_target(
    value: str | Mapping[str, str], workspace: Path, *, secret: str | None = None
) -> Target:
    """The database a secret names: a connection string, or a structured secret with host, port,
    database, user, password and a `driver` (or `type`) field naming the database. `secret`,
    the secret's name, is what error messages call it."""
    what = f"connection secret '{secret}'" if secret else "the connection string"
    try:
        if isinstance(value, str):
            return _from_url(value, workspace, what)
        return _from_fields(value, workspace, what)
    except ValueError:  # urllib's message would quote a part of the value
        raise ConnectorError(
            f"{what} is not a usable address: its port is not a number from 0 to 65535, or "
            "its [IPv6] host is malformed"
        ) from None


def _from_fields(value: Mapping[str, str], workspace: Path, what: str) -> Target:
    kind = value.get("driver") or value.get("type") or ""
    dialect = _SCHEMES.get(kind.lower())
    if dialect is None:
        raise ConnectorError(
            f"{what} has driver {kind!r}; set driver to one of sqlite, duckdb, postgres, sqlserver"
        )
    if dialect in (Dialect.SQLITE, Dialect.DUCKDB):
        return Target(dialect=dialect, path=_embedded_path(value.get("path", ""), workspace))
    port = value.get("port")
    if port and not port.isdigit():
        raise ConnectorError(f"{what} has port {port!r}; write a port number like 5432")
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


def _from_url(text: str, workspace: Path, what: str) -> Target:
    scheme, sep, rest = text.partition("://")
    dialect = _SCHEMES.get(scheme.lower()) if sep else None
    if dialect is None:
        # The scheme is shown only when it is one; otherwise the text may be anything (an
        # ODBC string with PWD=...), and is the secret's value.
        shown = f"scheme '{scheme}'" if sep and _SCHEME.fullmatch(scheme) else "no scheme://"
        raise ConnectorError(f"{what} is not a supported connection string ({shown}); {_SUPPORTED}")
    if dialect in (Dialect.SQLITE, Dialect.DUCKDB):
        if not rest.startswith("/"):
            raise ConnectorError(f"{what}: write {scheme}:///path (three slashes)")
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
