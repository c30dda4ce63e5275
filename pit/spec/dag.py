"""`pit.toml`: raw TOML -> a frozen `DagSpec`, collecting every problem on the way.

Rules that need more than one key (graph checks, script files, names across projects) live in
`pit.spec.validate`; this module only checks each key on its own.
"""

from __future__ import annotations

import enum
import tomllib
from collections.abc import Mapping
from typing import Any

import attrs

from pit.spec.cron import timezone_problem
from pit.spec.problems import Problem
from pit.spec.reader import TableReader

OVERLAP_POLICIES = ("skip", "queue", "allow")
TASK_TYPES = ("script", "save", "load")
LOAD_MODES = ("append", "truncate_and_load", "create_or_replace")
ARTIFACTS = ("logs", "project", "data")
DEFAULT_MAX_ACTIVE_TASKS = 4


class RunnerKind(enum.Enum):
    PYTHON = "python"
    BASH = "bash"
    SQL = "sql"
    DBT = "dbt"
    CUSTOM = "custom"


RUNNER_BY_EXTENSION = {".py": RunnerKind.PYTHON, ".sh": RunnerKind.BASH, ".sql": RunnerKind.SQL}
NAMED_RUNNERS = {kind.value: kind for kind in RunnerKind if kind is not RunnerKind.CUSTOM}


@attrs.frozen(kw_only=True)
class Runner:
    kind: RunnerKind
    prefix: tuple[str, ...] = ()
    """For custom runners (`runner = "$ node --trace"`), the command words put before the script."""


def resolve_runner(script: str, runner: str | None) -> Runner | None:
    """The runner of a task: `runner` when given, else by the script's extension; else None."""
    if runner is not None:
        text = runner.strip()
        if text.startswith("$"):
            words = tuple(text[1:].split())
            return Runner(kind=RunnerKind.CUSTOM, prefix=words) if words else None
        named = NAMED_RUNNERS.get(text)
        return Runner(kind=named) if named else None
    for extension, kind in RUNNER_BY_EXTENSION.items():
        if script.endswith(extension):
            return Runner(kind=kind)
    return None


@attrs.frozen(kw_only=True)
class TaskSpec:
    name: str
    script: str
    """Path of the script relative to the project (for dbt tasks: the dbt command, e.g. `run`)."""
    runner: Runner
    depends_on: tuple[str, ...] = ()
    timeout: float | None = None
    """Seconds each attempt may run; None for no limit."""
    retries: int = 0
    retry_delay: float = 0.0
    retry_backoff: float = 1.0
    """Each further retry waits `retry_delay * retry_backoff ** (retry - 1)`."""
    type: str = "script"
    """For SQL tasks: `script` runs the file; `save` streams its query's result to
    `data/<output>.parquet`; `load` loads `data/<source>.parquet` into `table`."""
    connection: str | None = None
    """The secret naming the database, over `[dag.sql].connection`."""
    output: str | None = None
    source: str | None = None
    table: str | None = None
    mode: str = "append"
    schema: str | None = None

    def retry_wait(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1 for the first retry)."""
        return self.retry_delay * self.retry_backoff ** (retry - 1)


@attrs.frozen(kw_only=True)
class OutputSpec:
    name: str
    type: str
    location: str
    extra: Mapping[str, Any] = attrs.field(factory=dict)
    """Further fields (e.g. `recipients`) kept as written, for tools that read them."""


@attrs.frozen(kw_only=True)
class SqlSpec:
    connection: str | None = None
    """Name of the secret holding the connection string."""


@attrs.frozen(kw_only=True)
class DbtSpec:
    version: str
    adapter: str
    connection: str
    extra_deps: tuple[str, ...] = ()
    project_dir: str | None = None
    profile: str | None = None
    """Profile name in the generated profiles.yml; the DAG name when not set."""
    target: str = "prod"


@attrs.frozen(kw_only=True)
class FtpWatchSpec:
    directory: str
    pattern: str = "*"
    secret: str | None = None
    """Structured secret with host, user, password (and optional port, tls)."""
    host: str | None = None
    """Legacy form: host, user and password_secret given one by one."""
    user: str | None = None
    password_secret: str | None = None
    port: int | None = None
    """None: the secret's port, else 21."""
    tls: bool | None = None
    """None: the secret's tls, else plain FTP."""
    archive_dir: str | None = None
    poll_interval: float = 30.0
    stable_seconds: int = 30


@attrs.frozen(kw_only=True)
class WebhookSpec:
    token_secret: str


@attrs.frozen(kw_only=True)
class DagSpec:
    name: str
    tasks: tuple[TaskSpec, ...]
    schedule: str | None = None
    timezone: str | None = None
    """IANA zone the schedule is read in; None for the machine's local zone."""
    overlap: str = "skip"
    timeout: float | None = None
    keep_artifacts: tuple[str, ...] | None = None
    """None means: use the workspace setting."""
    max_active_tasks: int = DEFAULT_MAX_ACTIVE_TASKS
    git_url: str | None = None
    git_ref: str | None = None
    sql: SqlSpec | None = None
    dbt: DbtSpec | None = None
    ftp_watch: FtpWatchSpec | None = None
    webhook: WebhookSpec | None = None
    outputs: tuple[OutputSpec, ...] = ()

    @property
    def git_backed(self) -> bool:
        return self.git_url is not None

    def task(self, name: str) -> TaskSpec:
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)


def parse_toml(text: str, file: str) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Decode TOML, turning a syntax error into a problem that names the line and column."""
    try:
        return tomllib.loads(text), []
    except tomllib.TOMLDecodeError as exc:
        return None, [
            Problem(file=file, message=f"not valid TOML: {exc}", fix="fix the syntax there")
        ]
    except RecursionError:
        return None, [Problem(file=file, message="not valid TOML: nested too deeply")]


def parse_dag(text: str, file: str) -> tuple[DagSpec | None, list[Problem]]:
    """Parse a `pit.toml` into the spec and every problem found.

    The spec is None only when it cannot be built at all (no name, a broken task); otherwise it is
    returned alongside the problems so that graph checks can still report theirs in the same pass.
    """
    raw, problems = parse_toml(text, file)
    if raw is None:
        return None, problems
    top = TableReader(file, "", raw, problems)
    dag_table = top.table("dag")
    task_tables = top.tables("tasks")
    output_tables = top.tables("outputs")
    top.finish()
    if dag_table is None:
        if not top.has("dag"):
            problems.append(
                Problem(
                    file=file,
                    key="dag",
                    message="missing [dag] table",
                    fix='add [dag] with name = "..."',
                )
            )
        return None, problems
    dag = _read_dag(
        dag_table, [_read_task(t) for t in task_tables], [_read_output(t) for t in output_tables]
    )
    if not task_tables:
        problems.append(
            Problem(
                file=file,
                key="tasks",
                message="the DAG has no tasks",
                fix="add at least one [[tasks]] table",
            )
        )
    return dag, problems


def _read_dag(
    r: TableReader, tasks: list[TaskSpec | None], outputs: list[OutputSpec | None]
) -> DagSpec | None:
    name = r.string("name", required=True)
    schedule = r.string("schedule")
    timezone = r.string("timezone")
    if timezone is not None and (reason := timezone_problem(timezone)):
        r.problem("timezone", reason)
    overlap = r.string("overlap")
    if overlap is None:
        overlap = "skip"
    elif overlap not in OVERLAP_POLICIES:
        r.problem(
            "overlap",
            f"'{overlap}' is not an overlap policy",
            f"use one of {', '.join(OVERLAP_POLICIES)}",
        )
    timeout = r.duration("timeout")
    keep = read_artifacts(r)
    max_active = r.integer("max_active_tasks", default=DEFAULT_MAX_ACTIVE_TASKS, minimum=1)
    git_url, git_ref = r.string("git_url"), r.string("git_ref")
    if (git_url is None) != (git_ref is None):
        missing = "git_ref" if git_ref is None else "git_url"
        r.problem(
            missing,
            "git_url and git_ref must be set together",
            f"add {missing}, or remove the other",
        )
    sql = _read_sql(sub) if (sub := r.table("sql")) else None
    dbt = _read_dbt(sub, git_backed=git_url is not None) if (sub := r.table("dbt")) else None
    ftp = _read_ftp_watch(sub) if (sub := r.table("ftp_watch")) else None
    webhook = _read_webhook(sub) if (sub := r.table("webhook")) else None
    r.finish()
    if name is None or any(t is None for t in tasks) or any(o is None for o in outputs):
        return None
    return DagSpec(
        name=name,
        tasks=tuple(t for t in tasks if t),
        schedule=schedule,
        timezone=timezone,
        overlap=overlap,
        timeout=timeout,
        keep_artifacts=keep,
        max_active_tasks=max_active,
        git_url=git_url,
        git_ref=git_ref,
        sql=sql,
        dbt=dbt,
        ftp_watch=ftp,
        webhook=webhook,
        outputs=tuple(o for o in outputs if o),
    )


def read_artifacts(r: TableReader) -> tuple[str, ...] | None:
    """`keep_artifacts`, in `[dag]` or `pit_config.toml`: any of logs, project, data."""
    keep = r.strings("keep_artifacts")
    for value in keep or ():
        if value not in ARTIFACTS:
            r.problem(
                "keep_artifacts",
                f"'{value}' is not a run artifact",
                f"use any of {', '.join(ARTIFACTS)}",
            )
    return keep


def _read_task(r: TableReader) -> TaskSpec | None:
    name = r.string("name", required=True)
    type_ = r.string("type") or "script"
    if type_ not in TASK_TYPES:
        r.problem("type", f"'{type_}' is not a task type", f"use one of {', '.join(TASK_TYPES)}")
        type_ = "script"
    # A load task needs no script: it moves a Parquet file into a table.
    script = r.string("script", required=type_ != "load")
    if script is None and type_ == "load" and not r.has("script"):
        script = ""
    runner_text = r.string("runner")
    depends_on = r.strings("depends_on") or ()
    timeout = r.duration("timeout")
    retries = r.integer("retries", default=0)
    retry_delay = r.duration("retry_delay") or 0.0
    retry_backoff = r.number("retry_backoff", default=1.0, minimum=1.0)
    sql = _read_sql_fields(r, type_)
    r.finish()
    if name is None or script is None:
        return None
    runner = (
        Runner(kind=RunnerKind.SQL)
        if type_ == "load" and not script
        else (resolve_runner(script, runner_text))
    )
    if runner is None:
        if runner_text is not None:
            r.problem(
                "runner",
                f"'{runner_text}' is not a runner",
                "use python, bash, sql, dbt, or '$ command' for a custom one",
            )
        else:
            r.problem(
                "script",
                f"no runner for '{script}'",
                'use a .py, .sh or .sql script, or set runner (e.g. runner = "$ node")',
            )
        return None
    if runner.kind is not RunnerKind.SQL and (type_ != "script" or sql["connection"]):
        key = "type" if type_ != "script" else "connection"
        r.problem(key, f"only SQL tasks take {key}", 'use a .sql script (or runner = "sql")')
    return TaskSpec(
        name=name,
        script=script,
        runner=runner,
        depends_on=depends_on,
        timeout=timeout,
        retries=retries,
        retry_delay=retry_delay,
        retry_backoff=retry_backoff,
        type=type_,
        **sql,  # type: ignore[arg-type]
    )


def _read_sql_fields(r: TableReader, type_: str) -> dict[str, str | None]:
    """The fields of SQL tasks; each belongs to one task type, and is required there."""
    fields: dict[str, str | None] = {"connection": r.string("connection")}
    owners = {"output": "save", "source": "load", "table": "load", "mode": "load", "schema": "load"}
    for key, owner in owners.items():
        value = r.string(key)
        if value is not None and type_ != owner:
            r.problem(key, f"only {owner} tasks take {key}", f'set type = "{owner}", or remove it')
            value = None
        elif (
            value is None
            and type_ == owner
            and key in ("output", "source", "table")
            and not r.has(key)
        ):
            r.problem(key, f"a {owner} task needs {key}")
        fields[key] = value
    mode = fields.pop("mode") or "append"
    if mode not in LOAD_MODES:
        r.problem("mode", f"'{mode}' is not a load mode", f"use one of {', '.join(LOAD_MODES)}")
    fields["mode"] = mode
    return fields


def _read_output(r: TableReader) -> OutputSpec | None:
    name = r.string("name", required=True)
    type_ = r.string("type", required=True)
    location = r.string("location", required=True)
    if name is None or type_ is None or location is None:
        return None
    return OutputSpec(name=name, type=type_, location=location, extra=r.unread())


def _read_sql(r: TableReader) -> SqlSpec:
    connection = r.string("connection")
    r.finish()
    return SqlSpec(connection=connection)


def _read_dbt(r: TableReader, *, git_backed: bool) -> DbtSpec | None:
    fix = "the [dag.dbt] table needs version, adapter and connection"
    version = r.string("version")
    adapter = r.string("adapter")
    connection = r.string("connection")
    for key, value in (("version", version), ("adapter", adapter), ("connection", connection)):
        if value is None and not r.has(key):
            r.problem(key, "is required for dbt", fix)
    project_dir = r.string("project_dir")
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
    if version is None or adapter is None or connection is None:
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


def _read_ftp_watch(r: TableReader) -> FtpWatchSpec | None:
    directory = r.string("directory", required=True)
    pattern = r.string("pattern") or "*"
    secret = r.string("secret")
    host, user, password_secret = r.string("host"), r.string("user"), r.string("password_secret")
    legacy = (host, user, password_secret)
    if secret is None and not all(legacy):
        r.problem(
            "secret",
            "FTP credentials are missing",
            'set secret = "<structured secret>", or host, user and password_secret',
        )
    elif secret is not None and any(legacy):
        r.problem("secret", "give either secret or host/user/password_secret, not both")
    port = r.integer("port", default=0, minimum=1) or None
    tls = r.boolean("tls", default=False) if r.has("tls") else None
    archive_dir = r.string("archive_dir")
    poll_interval = r.duration("poll_interval")
    stable_seconds = r.integer("stable_seconds", default=30)
    r.finish()
    if directory is None:
        return None
    return FtpWatchSpec(
        directory=directory,
        pattern=pattern,
        secret=secret,
        host=host,
        user=user,
        password_secret=password_secret,
        port=port,
        tls=tls,
        archive_dir=archive_dir,
        poll_interval=30.0 if poll_interval is None else poll_interval,
        stable_seconds=stable_seconds,
    )


def _read_webhook(r: TableReader) -> WebhookSpec | None:
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
