"""`pit.toml`: raw TOML -> a frozen `DagSpec`, collecting every problem on the way.

Rules that need more than one key (graph checks, script files, names across projects) live in
`pit.spec.validate`; this module only checks each key on its own.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Any, TypeVar

import attrs

from pit.spec import limits
from pit.spec.cron import timezone_problem
from pit.spec.defaults import (
    DEFAULT_CATCHUP_WINDOW,
    DEFAULT_FETCH_TIMEOUT,
    DEFAULT_MAX_ACTIVE_TASKS,
)
from pit.spec.git import git_ref_problem, git_url_problem
from pit.spec.params import ParamSpec, read_params
from pit.spec.problems import Problem, shown
from pit.spec.reader import TableReader
from pit.spec.tables import (
    AfterSpec,
    DbtSpec,
    DirWatchSpec,
    NotifySpec,
    RequireSpec,
    SqlSpec,
    WebhookSpec,
    read_after,
    read_dbt,
    read_dir_watch,
    read_ftp_watch,
    read_notify,
    read_requires,
    read_sql,
    read_webhook,
)
from pit.spec.tables import FtpWatchSpec as FtpWatchSpec  # re-exported for the FTP watch actor
from pit.spec.toml import parse_toml as parse_toml  # re-exported: secrets and workspace use it
from pit.spec.workspace import read_artifacts, read_keep_days, read_keep_runs


class Overlap(enum.StrEnum):
    """`overlap`: what a trigger's request does while a run of the DAG is active. A StrEnum, so
    it compares equal to, and is written as, its value."""

    SKIP = "skip"
    """Refuse the request."""
    QUEUE = "queue"
    """Keep at most one run waiting for the active one."""
    ALLOW = "allow"
    """Start the run alongside."""
    LATEST = "latest"
    """Keep only the newest run waiting for the active one: a newer request replaces it."""


OVERLAP_SPELLINGS = {"wait": Overlap.QUEUE}
"""The original Pit's names for our policies, mapped once, here."""


class RequiresElse(enum.StrEnum):
    """`requires_else`: what a run whose required DAGs have not succeeded recently does."""

    FAIL = "fail"
    SKIP = "skip"
    """End cancelled, its tasks skipped, the record saying why."""


class TaskType(enum.StrEnum):
    """A task's `type`: every task runs a script; SQL tasks may save or load instead."""

    SCRIPT = "script"
    """Run the script (for SQL tasks: the file as one batch)."""
    SAVE = "save"
    """Stream the SQL file's query into `data/<output>.parquet`."""
    LOAD = "load"
    """Load `data/<source>.parquet` into `table`."""


class LoadMode(enum.StrEnum):
    """How a load (a load task's `mode`, the SDK's `load_data`) treats the table."""

    APPEND = "append"
    """Add the file's rows to an existing table."""
    TRUNCATE_AND_LOAD = "truncate_and_load"
    """Empty an existing table, then load; both or neither happen."""
    CREATE_OR_REPLACE = "create_or_replace"
    """Drop the table if it exists and create it from the Parquet schema, then load."""


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
class SqlTaskFields:
    """The keys of `[[tasks]]` that only SQL tasks take; each of output..schema belongs to one
    task type (`save` or `load`)."""

    connection: str | None = None
    """The secret naming the database, over `[dag.sql].connection`."""
    output: str | None = None
    """`save`: the query's rows go to `data/<output>.parquet`."""
    source: str | None = None
    """`load`: `data/<source>.parquet` is loaded..."""
    table: str | None = None
    """...into this table,"""
    mode: LoadMode = LoadMode.APPEND
    schema: str | None = None


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
    type: TaskType = TaskType.SCRIPT
    """For SQL tasks: `script` runs the file; `save` streams its query's result to
    `data/<output>.parquet`; `load` loads `data/<source>.parquet` into `table`."""
    sql: SqlTaskFields = attrs.field(factory=SqlTaskFields)
    secrets: tuple[str, ...] | None = None
    """The only secrets the task may ask the broker for; None: the DAG's list, or any."""
    pool: str | None = None
    """The pool (`[pools]` in pit_config.toml) each attempt takes a slot of."""
    priority: int = 0
    """Among tasks waiting for a slot of a pool, the highest goes first."""
    on_failure: str | None = None
    """A script run once the task has failed (its last attempt), with the task's context."""
    on_success: str | None = None
    hook_timeout: float = 300.0
    """Seconds a hook may run before it is stopped (SIGTERM, the grace, SIGKILL)."""
    resources: Mapping[str, float] = attrs.field(factory=dict)
    """Under `[executor] kind = "dask"`: what an attempt needs of a worker (Dask worker
    resources, as `dask worker --resources "memory=4e9"` declares them)."""

    def hook(self, kind: str) -> TaskSpec | None:
        """The task as its `on_failure` or `on_success` hook runs: the same, another script."""
        script = self.on_failure if kind == "on_failure" else self.on_success
        runner = resolve_runner(script, None) if script else None
        if script is None or runner is None:
            return None
        return attrs.evolve(self, script=script, runner=runner)

    def retry_wait(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1 for the first retry), at most
        `limits.MAX_DURATION`: a backoff of 10 over 100 retries must not wait for ever."""
        if self.retry_delay <= 0:
            return 0.0
        exponent = min(retry - 1, 400)  # 10.0 ** 400 would overflow; 7 days is long before
        return min(self.retry_delay * self.retry_backoff**exponent, limits.MAX_DURATION)


@attrs.frozen(kw_only=True)
class OutputSpec:
    name: str
    type: str
    location: str
    extra: Mapping[str, Any] = attrs.field(factory=dict)
    """Further fields (e.g. `recipients`) kept as written, for tools that read them."""


@attrs.frozen(kw_only=True)
class DagSpec:
    name: str
    tasks: tuple[TaskSpec, ...]
    schedule: str | None = None
    timezone: str | None = None
    """IANA zone the schedule is read in; None for the machine's local zone."""
    overlap: Overlap = Overlap.SKIP
    catchup: bool = False
    """After pit serve was down, run each fire it missed (within `catchup_window`), oldest
    first, one at a time."""
    catchup_window: float = DEFAULT_CATCHUP_WINDOW
    timeout: float | None = None
    keep_artifacts: tuple[str, ...] | None = None
    keep_runs: int | None = None
    keep_days: int | None = None
    """None means: use the workspace setting."""
    max_active_tasks: int = DEFAULT_MAX_ACTIVE_TASKS
    git_url: str | None = None
    git_ref: str | None = None
    fetch_timeout: float = DEFAULT_FETCH_TIMEOUT
    """Seconds a git-backed DAG's fetch may take before its run fails."""
    offline_ok: bool = False
    """When the fetch fails, run the commit checked out last instead of failing."""
    sql: SqlSpec | None = None
    dbt: DbtSpec | None = None
    ftp_watch: FtpWatchSpec | None = None
    webhook: WebhookSpec | None = None
    after: AfterSpec | None = None
    dir_watch: DirWatchSpec | None = None
    notify: tuple[NotifySpec, ...] = ()
    """`[[dag.notify]]`: who hears of the run's failure, success, retries."""
    sla: float | None = None
    """Seconds after its scheduled time (or its start) by which a run should have ended: past
    it, `sla_miss` is notified, once."""
    requires: tuple[RequireSpec, ...] = ()
    """DAGs that must have succeeded recently before a run's first task starts."""
    requires_wait: float = 0.0
    """Seconds a run waits for them (checking again meanwhile) before it gives up."""
    requires_else: RequiresElse = RequiresElse.FAIL
    """What a run that gives up does: fail, or end cancelled as skipped."""
    outputs: tuple[OutputSpec, ...] = ()
    secrets: tuple[str, ...] | None = None
    """The only secrets its tasks may ask the broker for (a task's own list replaces it)."""
    params: tuple[ParamSpec, ...] = ()
    """`[dag.params]`: the typed params a run takes (see `pit.spec.params`)."""
    _by_name: Mapping[str, TaskSpec] = attrs.field(init=False, eq=False, repr=False)
    """The tasks by name: a run looks each one up as it starts (a fan-out of 1,000 did a
    linear search each time)."""

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {task.name: task for task in self.tasks})

    @property
    def git_backed(self) -> bool:
        return self.git_url is not None

    def task(self, name: str) -> TaskSpec:
        return self._by_name[name]

    def secret_lists(self) -> dict[str, frozenset[str]]:
        """Task -> the only secrets it may read, for each task with a list (its own or the
        DAG's); a task without one reads any secret of the DAG's section or [global]."""
        lists = {t.name: t.secrets if t.secrets is not None else self.secrets for t in self.tasks}
        return {task: frozenset(names) for task, names in lists.items() if names is not None}


@attrs.frozen(kw_only=True)
class DagDraft:
    """A `pit.toml` as far as it could be read, so that the rules across keys (cycles, missing
    dependencies, duplicate names) report in the same pass as a task that did not parse."""

    spec: DagSpec
    """The DAG built from the parts that parsed; its name is "" when it had none."""
    positions: tuple[int, ...]
    """The place of each of `spec.tasks` in `[[tasks]]`, so problems name the right `tasks[i]`."""
    written_names: frozenset[str]
    """Every task name written, also of tasks that did not parse: not "unknown" to depends_on."""
    complete: bool
    """Whether every part parsed: only a complete DAG may run."""

    @classmethod
    def of(cls, spec: DagSpec) -> DagDraft:
        return cls(
            spec=spec,
            positions=tuple(range(len(spec.tasks))),
            written_names=frozenset(t.name for t in spec.tasks),
            complete=True,
        )


def parse_dag(text: str | bytes, file: str) -> tuple[DagSpec | None, list[Problem]]:
    """Parse a `pit.toml` into the spec and every problem found (warnings included).

    The spec is None when any part of the file could not be read (no name, a broken task); it
    is returned alongside key problems otherwise. `read_dag` gives the partial DAG too.
    """
    draft, problems = read_dag(text, file)
    return (draft.spec if draft is not None and draft.complete else None), problems


def read_dag(text: str | bytes, file: str) -> tuple[DagDraft | None, list[Problem]]:
    """The DAG as far as it parsed, and every problem; None only for a file that is not TOML."""
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
        dag_table = TableReader(file, "dag", {}, [])  # its problems are said above
    fields = _read_dag(dag_table)
    tasks = [_read_task(t) for t in task_tables]
    outputs = [_read_output(t) for t in output_tables]
    dag = DagSpec(
        **fields,
        tasks=tuple(t for t in tasks if t is not None),
        outputs=tuple(o for o in outputs if o is not None),
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
    written = (t.raw.get("name") for t in task_tables)
    draft = DagDraft(
        spec=dag,
        positions=tuple(i for i, t in enumerate(tasks) if t is not None),
        written_names=frozenset(n for n in written if isinstance(n, str)),
        complete=bool(dag.name)
        and top.has("dag")
        and None not in tasks
        and None not in outputs
        and _all_read(top, "tasks", task_tables)
        and _all_read(top, "outputs", output_tables),
    )
    return draft, problems


def _read_dag(r: TableReader) -> dict[str, Any]:
    """The fields of `[dag]` for `DagSpec`; the name is "" when it has none."""
    name = r.name("name")
    schedule = r.string("schedule")
    timezone = r.path_string("timezone")
    if timezone is not None and (reason := timezone_problem(timezone)):
        r.problem("timezone", reason, "use an IANA name such as 'Europe/Berlin' or 'UTC'")
    written = r.string("overlap")
    overlap = _choice(
        r,
        "overlap",
        written and OVERLAP_SPELLINGS.get(written, written),
        Overlap,
        Overlap.SKIP,
        "an overlap policy",
    )
    catchup = r.boolean("catchup", default=False)
    catchup_window = r.duration(
        "catchup_window", positive=True, maximum=limits.MAX_AGE, maximum_text=limits.MAX_AGE_TEXT
    )
    for key in ("catchup", "catchup_window"):
        if r.has(key) and schedule is None:
            r.problem(key, "applies to scheduled DAGs only", "set schedule, or remove it")
    timeout = r.duration("timeout", positive=True)
    keep = read_artifacts(r)
    keep_runs, keep_days = read_keep_runs(r), read_keep_days(r)
    max_active = r.integer(
        "max_active_tasks",
        default=DEFAULT_MAX_ACTIVE_TASKS,
        minimum=1,
        maximum=limits.MAX_ACTIVE,
    )
    git_url, git_ref = r.string("git_url"), r.string("git_ref")
    if (git_url is None) != (git_ref is None):
        missing = "git_ref" if git_ref is None else "git_url"
        r.problem(
            missing,
            "git_url and git_ref must be set together",
            f"add {missing}, or remove the other",
        )
    fetch_timeout = r.duration("fetch_timeout", positive=True)
    offline_ok = r.boolean("offline_ok", default=False)
    if git_url is None:
        for key in ("fetch_timeout", "offline_ok"):
            if r.has(key):
                r.problem(key, "applies to git-backed DAGs only", "set git_url, or remove it")
    else:
        if problem := git_url_problem(git_url):
            r.problem(
                "git_url",
                problem,
                "a URL git can fetch: https://, ssh://, file:// or user@host:path",
            )
        if git_ref is not None and (problem := git_ref_problem(git_ref)):
            r.problem("git_ref", problem, "a branch, a tag or a commit SHA")
    sql = read_sql(sub) if (sub := r.table("sql")) else None
    dbt = read_dbt(sub, git_backed=git_url is not None) if (sub := r.table("dbt")) else None
    ftp = read_ftp_watch(sub) if (sub := r.table("ftp_watch")) else None
    webhook = read_webhook(sub) if (sub := r.table("webhook")) else None
    after = read_after(sub) if (sub := r.table("after")) else None
    dir_watch = read_dir_watch(sub) if (sub := r.table("dir_watch")) else None
    if dir_watch is not None and ftp is not None:
        r.problem("dir_watch", "a DAG watches an FTP server or a folder, not both")
    notify = tuple(spec for sub in r.tables("notify") if (spec := read_notify(sub)))
    sla = r.duration("sla", positive=True, maximum=limits.MAX_AGE, maximum_text=limits.MAX_AGE_TEXT)
    requires = read_requires(r)
    requires_wait = r.duration("requires_wait")
    requires_else = _choice(
        r, "requires_else", r.string("requires_else"), RequiresElse, RequiresElse.FAIL, "a choice"
    )
    for key in ("requires_wait", "requires_else"):
        if r.has(key) and not requires:
            r.problem(key, "applies to a DAG with requires", "add requires, or remove it")
    params = read_params(sub) if (sub := r.table("params")) else ()
    secrets = r.strings("secrets")
    r.finish()
    return {
        "name": name or "",
        "schedule": schedule,
        "timezone": timezone,
        "overlap": overlap,
        "catchup": catchup,
        "catchup_window": catchup_window or DEFAULT_CATCHUP_WINDOW,
        "timeout": timeout,
        "keep_artifacts": keep,
        "keep_runs": keep_runs,
        "keep_days": keep_days,
        "max_active_tasks": max_active,
        "git_url": git_url,
        "git_ref": git_ref,
        "fetch_timeout": fetch_timeout or DEFAULT_FETCH_TIMEOUT,
        "offline_ok": offline_ok,
        "sql": sql,
        "dbt": dbt,
        "ftp_watch": ftp,
        "webhook": webhook,
        "after": after,
        "dir_watch": dir_watch,
        "notify": notify,
        "sla": sla,
        "requires": requires,
        "requires_wait": requires_wait or 0.0,
        "requires_else": requires_else,
        "secrets": secrets,
        "params": params,
    }


def _all_read(top: TableReader, key: str, tables: list[TableReader]) -> bool:
    """Whether every entry of the array of tables `key` was a table (or there is no `key`)."""
    written = top.raw.get(key, [])
    return isinstance(written, list) and len(written) == len(tables)


Choice = TypeVar("Choice", bound=enum.StrEnum)


def _choice(
    r: TableReader, key: str, text: str | None, choices: type[Choice], default: Choice, what: str
) -> Choice:
    """The member of `choices` that `text` (the value of `key`) names, `default` when None; a
    value that names none is a problem, and reads as `default` so that the rest of the file is
    still checked (the DAG cannot run: the problem is an error)."""
    if text is None:
        return default
    try:
        return choices(text)
    except ValueError:
        r.problem(
            key, f"{shown(text)} is not {what}", f"use one of {', '.join(c for c in choices)}"
        )
        return default


def _read_task(r: TableReader) -> TaskSpec | None:
    name = r.name("name")
    type_ = _choice(r, "type", r.string("type") or None, TaskType, TaskType.SCRIPT, "a task type")
    # A load task needs no script: it moves a Parquet file into a table.
    script = r.path_string("script", required=type_ is not TaskType.LOAD)
    if script is None and type_ is TaskType.LOAD and not r.has("script"):
        script = ""
    runner_text = r.string("runner")
    depends_on = r.strings("depends_on") or ()
    timeout = r.duration("timeout", positive=True)
    retries = r.integer("retries", default=0, maximum=limits.MAX_RETRIES)
    retry_delay = r.duration("retry_delay") or 0.0
    retry_backoff = r.number("retry_backoff", default=1.0, minimum=1.0, maximum=limits.MAX_BACKOFF)
    sql = _read_sql_fields(r, type_)
    secrets = r.strings("secrets")
    hooks = {kind: r.path_string(kind) for kind in ("on_failure", "on_success")}
    for kind, hook in hooks.items():
        if hook is not None and resolve_runner(hook, None) is None:
            r.problem(kind, f"no runner for {shown(hook)}", "use a .py or .sh script")
    hook_timeout = r.duration("hook_timeout", positive=True)
    pool = r.string("pool")
    priority = r.integer(
        "priority", default=0, minimum=-limits.MAX_PRIORITY, maximum=limits.MAX_PRIORITY
    )
    resources = _read_resources(sub) if (sub := r.table("resources")) else {}
    r.finish()
    if name is None or script is None:
        return None
    runner = (
        Runner(kind=RunnerKind.SQL)
        if type_ is TaskType.LOAD and not script
        else (resolve_runner(script, runner_text))
    )
    if runner is None:
        if runner_text is not None:
            r.problem(
                "runner",
                f"{shown(runner_text)} is not a runner",
                "use python, bash, sql, dbt, or '$ command' for a custom one",
            )
        else:
            r.problem(
                "script",
                f"no runner for {shown(script)}",
                'use a .py, .sh or .sql script, or set runner (e.g. runner = "$ node")',
            )
        return None
    if runner.kind is not RunnerKind.SQL and (type_ is not TaskType.SCRIPT or sql.connection):
        key = "type" if type_ is not TaskType.SCRIPT else "connection"
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
        sql=sql,
        secrets=secrets,
        pool=pool,
        priority=priority,
        on_failure=hooks["on_failure"],
        on_success=hooks["on_success"],
        hook_timeout=hook_timeout or 300.0,
        resources=resources,
    )


def _read_resources(r: TableReader) -> dict[str, float]:
    """`resources = {memory = "4GB", gpu = 1}`: a number, or a size in bytes."""
    found = {}
    for name in list(r.raw):
        value = r.value(name)
        amount = parse_size(value) if isinstance(value, str) else _number(value)
        if amount is None or not math.isfinite(amount) or amount <= 0:
            r.problem(
                name,
                f"{shown(value)} is not an amount of a resource",
                'use a positive number, or a size such as "4GB"',
            )
            continue
        found[name] = amount
    r.finish()
    return found


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


_SIZE_UNITS = {"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}
_SIZE_UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(text: str) -> float | None:
    """ "4GB" -> 4e9, "512MiB" -> 536870912.0; None for anything else."""
    number = text.strip().upper().rstrip("BIKMGT")
    unit = text.strip().upper()[len(number) :]
    try:
        value = float(number)
    except ValueError:
        return None
    factor = _SIZE_UNITS.get(unit.strip())
    return value * factor if factor is not None and math.isfinite(value) else None


_SQL_FIELD_OWNERS = {
    "output": TaskType.SAVE,
    "source": TaskType.LOAD,
    "table": TaskType.LOAD,
    "mode": TaskType.LOAD,
    "schema": TaskType.LOAD,
}
"""The task type each SQL task key belongs to."""


def _read_sql_fields(r: TableReader, type_: TaskType) -> SqlTaskFields:
    """The fields of SQL tasks; each belongs to one task type, and is required there."""
    connection = r.string("connection")
    texts: dict[str, str | None] = {}
    for key, owner in _SQL_FIELD_OWNERS.items():
        value = r.string(key)
        if value is not None and type_ is not owner:
            r.problem(key, f"only {owner} tasks take {key}", f'set type = "{owner}", or remove it')
            value = None
        elif (
            value is None
            and type_ is owner
            and key in ("output", "source", "table")
            and not r.has(key)
        ):
            r.problem(key, f"a {owner} task needs {key}")
        elif value is not None and key in ("output", "source") and limits.name_problem(value):
            # data/<output>.parquet: a file name, which must stay inside the run's data/.
            r.problem(
                key,
                f"{shown(value)} is not a valid file name: {limits.name_problem(value)}",
                limits.NAME_RULE,
            )
            value = None
        texts[key] = value
    return SqlTaskFields(
        connection=connection,
        output=texts["output"],
        source=texts["source"],
        table=texts["table"],
        mode=_choice(r, "mode", texts["mode"] or None, LoadMode, LoadMode.APPEND, "a load mode"),
        schema=texts["schema"],
    )


def _read_output(r: TableReader) -> OutputSpec | None:
    name = r.string("name", required=True)
    type_ = r.string("type", required=True)
    location = r.string("location", required=True)
    if name is None or type_ is None or location is None:
        return None
    return OutputSpec(name=name, type=type_, location=location, extra=r.unread())
