"""The sub-tables of `[dag]`: `[dag.sql]`, `[dag.dbt]`, `[dag.ftp_watch]`, `[dag.webhook]`, and
`requires`. Each is read on its own; rules across tables live in `pit.spec.validate`."""

from __future__ import annotations

import shlex
import urllib.parse

import attrs

from pit.spec import limits
from pit.spec.problems import shown
from pit.spec.reader import TableReader

MAX_PORT = 65_535


@attrs.frozen(kw_only=True)
class SqlSpec:
    connection: str | None = None
    """Name of the secret holding the connection string."""


@attrs.frozen(kw_only=True)
class DbtSpec:
    version: str
    adapter: str
    connection: str | None = None
    """The structured secret with the database's fields; the original Pit checks it only at run
    time, so a file without it still loads."""
    extra_deps: tuple[str, ...] = ()
    project_dir: str | None = None
    profile: str | None = None
    """Profile name in the generated profiles.yml; the DAG name when not set."""
    target: str = "prod"


@attrs.frozen(kw_only=True)
class FtpWatchSpec:
    directory: str
    secret: str
    """The secret holding the credentials: a structured one with host, user, password (and
    optional port, tls, cafile); or, when `host` and `user` are written here (the original
    Pit's `password_secret` form), a plain secret holding the password."""
    pattern: str = "*"
    host: str | None = None
    user: str | None = None
    port: int | None = None
    """None: the secret's port, else 21."""
    tls: bool | None = None
    """None: the secret's tls, else plain FTP."""
    archive_dir: str | None = None
    poll_interval: float = 30.0
    stable_seconds: int = 30
    protocol: str | None = None
    """`ftp` or `sftp`; None: the secret's `protocol` field, else FTP."""


@attrs.frozen(kw_only=True)
class DirWatchSpec:
    """`[dag.dir_watch]`: a folder of this machine watched as an FTP watch watches its server."""

    directory: str
    """`path` in pit.toml; relative to the workspace unless absolute."""
    pattern: str = "*"
    archive_dir: str | None = None
    poll_interval: float = 5.0
    stable_seconds: int = 10


@attrs.frozen(kw_only=True)
class WebhookSpec:
    token_secret: str


NOTIFY_EVENTS = ("failure", "success", "retry", "sla_miss")
NOTIFY_CHANNELS = ("webhook", "email", "command")


@attrs.frozen(kw_only=True)
class NotifySpec:
    """`[[dag.notify]]`: who hears of which of a run's events, and how."""

    on: tuple[str, ...]
    """Of `NOTIFY_EVENTS`: the run failed, succeeded, a task failed and will try again, or the
    run is still going `sla` after its scheduled time."""
    channel: str
    url: str | None = None
    """webhook: where the JSON is POSTed (or `url_secret`, a secret holding it)."""
    url_secret: str | None = None
    secret: str | None = None
    """email: the structured secret with the SMTP server's host, port, user, password, from
    (and starttls, true unless "false")."""
    to: tuple[str, ...] = ()
    command: str | None = None
    """command: run with the run's context in its environment, from the run's snapshot."""
    retries: int = 3
    timeout: float = 30.0


@attrs.frozen(kw_only=True)
class AfterSpec:
    """`[dag.after]`: run when every DAG named has succeeded since this DAG's last run."""

    dags: tuple[str, ...]


@attrs.frozen(kw_only=True)
class RequireSpec:
    """`requires`: another DAG that must have succeeded recently before a run starts."""

    dag: str
    max_age: float | None = None
    """Seconds a success of it stays fresh; None: its latest ended run must have succeeded."""


def read_sql(r: TableReader) -> SqlSpec:
    connection = r.string("connection")
    r.finish()
    return SqlSpec(connection=connection)


def read_dbt(r: TableReader, *, git_backed: bool) -> DbtSpec | None:
    version = r.string("version")
    adapter = r.string("adapter")
    for key, value, example in (
        ("version", version, "1.9.1"),
        ("adapter", adapter, "dbt-sqlserver"),
    ):
        if value is None and not r.has(key):
            r.problem(key, "is required for dbt", f'add {key} = "{example}" to [dag.dbt]')
    connection = r.string("connection")
    project_dir = r.path_string("project_dir")
    if project_dir is None and not git_backed and not r.has("project_dir"):
        r.problem(
            "project_dir",
            "is required for dbt (optional only for git-backed DAGs)",
            'set project_dir = "dbt_repo" (the folder holding dbt_project.yml)',
        )
    extra_deps = r.strings("extra_deps") or ()
    profile = r.string("profile")
    target = r.string("target") or "prod"
    r.finish()
    if version is None or adapter is None:
        return None
    return DbtSpec(
        version=version,
        adapter=adapter,
        connection=connection,
        extra_deps=extra_deps,
        project_dir=project_dir,
        profile=profile,
        target=target,
    )


def read_ftp_watch(r: TableReader) -> FtpWatchSpec | None:
    directory = r.path_string("directory", required=True)
    pattern = r.string("pattern") or "*"
    secret = r.string("secret")
    host, user, password_secret = r.string("host"), r.string("user"), r.string("password_secret")
    original = (host, user, password_secret)  # the original Pit's form
    if secret is None and not all(original):
        r.problem(
            "secret",
            "FTP credentials are missing",
            'set secret = "<structured secret>", or host, user and password_secret',
        )
    elif secret is not None and any(original):
        r.problem("secret", "give either secret or host/user/password_secret, not both")
    port = r.integer("port", default=0, minimum=1, maximum=MAX_PORT) or None
    tls = r.boolean("tls", default=False) if r.has("tls") else None
    archive_dir = r.path_string("archive_dir")
    poll_interval = r.duration("poll_interval", positive=True)
    stable_seconds = r.integer("stable_seconds", default=30, maximum=limits.MAX_STABLE_SECONDS)
    protocol = r.string("protocol")
    if protocol is not None and protocol not in ("ftp", "sftp"):
        r.problem("protocol", f"{shown(protocol)} is not a protocol", 'use "ftp" or "sftp"')
        protocol = None
    r.finish()
    secret = secret or password_secret  # the original's spelling, read into the one shape
    if directory is None or secret is None:
        return None
    return FtpWatchSpec(
        directory=directory,
        pattern=pattern,
        secret=secret,
        host=host,
        user=user,
        port=port,
        tls=tls,
        archive_dir=archive_dir,
        poll_interval=30.0 if poll_interval is None else poll_interval,
        stable_seconds=stable_seconds,
        protocol=protocol,
    )


def read_dir_watch(r: TableReader) -> DirWatchSpec | None:
    directory = r.path_string("path", required=True)
    pattern = r.string("pattern") or "*"
    archive_dir = r.path_string("archive_dir")
    poll_interval = r.duration("poll_interval", positive=True)
    stable_seconds = r.integer("stable_seconds", default=10, maximum=limits.MAX_STABLE_SECONDS)
    r.finish()
    if directory is None:
        return None
    return DirWatchSpec(
        directory=directory,
        pattern=pattern,
        archive_dir=archive_dir,
        poll_interval=5.0 if poll_interval is None else poll_interval,
        stable_seconds=stable_seconds,
    )


def read_after(r: TableReader) -> AfterSpec | None:
    names = r.strings("dags")
    if names is None and not r.has("dags"):
        r.problem("dags", "is required", 'dags = ["ingest"]: the DAGs whose success starts it')
    r.finish()
    if not names:
        return None
    if all(_dag_name(r, "dags", name) for name in names):
        return AfterSpec(dags=tuple(dict.fromkeys(names)))
    return None


def read_notify(r: TableReader) -> NotifySpec | None:
    on = r.strings("on")
    channel = r.string("channel", required=True)
    spec = NotifySpec(
        on=on or (),
        channel=channel or "",
        url=r.string("url"),
        url_secret=r.string("url_secret"),
        secret=r.string("secret"),
        to=r.strings("to") or (),
        command=r.string("command"),
        retries=r.integer("retries", default=3, maximum=limits.MAX_RETRIES),
        timeout=r.duration("timeout", positive=True) or 30.0,
    )
    r.finish()
    if not on:
        r.problem("on", "is required", f"on = [...] of {', '.join(NOTIFY_EVENTS)}")
        return None
    if unknown := [event for event in on if event not in NOTIFY_EVENTS]:
        r.problem("on", f"{shown(unknown[0])} is not an event", f"use {', '.join(NOTIFY_EVENTS)}")
        return None
    needs = {
        "webhook": ("url or url_secret", spec.url or spec.url_secret),
        "email": ("secret and to", spec.secret and spec.to),
        "command": ("command", spec.command),
    }
    if channel not in needs:
        if channel:
            r.problem("channel", f"{shown(channel)} is not a channel", f"use {', '.join(needs)}")
        return None
    what, given = needs[channel]
    if not given:
        r.problem("channel", f"a {channel} notification needs {what}")
        return None
    if spec.url and (problem := _url_problem(spec.url)):
        r.problem("url", problem, "write an http:// or https:// URL")
        return None
    if spec.command is not None:
        try:
            words = shlex.split(spec.command)
        except ValueError as exc:
            words, reason = [], str(exc)
        else:
            reason = "is empty"
        if not words:
            r.problem("command", f"{reason}", "write the command as a shell would read it")
            return None
    return spec


def _url_problem(url: str) -> str | None:
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError as exc:
        return f"is not a URL: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "is not an http(s) URL"
    if any(c.isspace() or ord(c) < 32 for c in url):
        return "holds a space or a control character"
    return None


def read_webhook(r: TableReader) -> WebhookSpec | None:
    token_secret = r.string("token_secret")
    if token_secret is not None and not token_secret.strip():
        r.problem("token_secret", "must not be empty", "name a plain secret holding the token")
        token_secret = None
    elif token_secret is None and not r.has("token_secret"):
        r.problem(
            "token_secret",
            "a webhook needs a token",
            'set token_secret = "<name of a plain secret>"',
        )
    r.finish()
    return WebhookSpec(token_secret=token_secret) if token_secret else None


REQUIRES_FORM = 'requires = { other_dag = { max_age = "24h" } } (or a list of DAG names)'


def read_requires(r: TableReader) -> tuple[RequireSpec, ...]:
    """`requires`: a list of DAG names (`["other_dag"]`, the original's form), a list of tables
    (`[{ dag = "ingest", max_age = "6h" }]`), or a table of DAGs each with a `max_age`."""
    if not r.has("requires"):
        return ()
    raw = r.raw["requires"]
    if isinstance(raw, list) and raw and all(isinstance(item, dict) for item in raw):
        tables = r.tables("requires")
        found = tuple(spec for table in tables if (spec := _read_require_entry(table)))
    elif isinstance(raw, list):
        names = r.strings("requires") or ()
        found = tuple(RequireSpec(dag=name) for name in names if _dag_name(r, "requires", name))
    else:
        table = r.table("requires")
        if table is None:
            return ()
        found = tuple(
            spec for name in list(table.raw) if (spec := _read_require(table, name)) is not None
        )
    return found


def _read_require_entry(entry: TableReader) -> RequireSpec | None:
    name = entry.string("dag", required=True)
    max_age = entry.duration(
        "max_age", positive=True, maximum=limits.MAX_AGE, maximum_text=limits.MAX_AGE_TEXT
    )
    entry.finish()
    if name is None or not _dag_name(entry, "dag", name):
        return None
    return RequireSpec(dag=name, max_age=max_age)


def _read_require(requires: TableReader, name: str) -> RequireSpec | None:
    entry = requires.table(name)
    if entry is None or not _dag_name(requires, name, name):
        return None
    max_age = entry.duration(
        "max_age", positive=True, maximum=limits.MAX_AGE, maximum_text=limits.MAX_AGE_TEXT
    )
    entry.finish()
    return RequireSpec(dag=name, max_age=max_age)


def _dag_name(r: TableReader, key: str, name: str) -> bool:
    if reason := limits.name_problem(name):
        r.problem(key, f"{shown(name)} is not a DAG name: {reason}", limits.NAME_RULE)
        return False
    return True
