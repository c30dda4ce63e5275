"""`pit_config.toml`: workspace-wide defaults. Every field is optional; CLI flags win over it."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping

import attrs

from pit.spec import limits
from pit.spec.defaults import ARTIFACTS, DEFAULT_DBT_DRIVER, DEFAULT_STOP_GRACE
from pit.spec.problems import Problem, Severity, shown
from pit.spec.reader import TableReader
from pit.spec.toml import parse_toml

CONFIG_FILE = "pit_config.toml"
DEFAULT_SHUTDOWN_GRACE = 60.0
DEFAULT_MAX_QUEUED_RUNS = 100


class ExecutorKind(enum.StrEnum):
    LOCAL = "local"
    DASK = "dask"


@attrs.frozen(kw_only=True)
class ExecutorConfig:
    """`[executor]`: where tasks' processes run. Local by default; with `kind = "dask"`, on
    the workers of a Dask distributed cluster (`pit.remote`)."""

    kind: ExecutorKind = ExecutorKind.LOCAL
    scheduler: str | None = None
    """The scheduler's address, `tcp://host:8786`."""
    scheduler_file: str | None = None
    """Or the file `dask scheduler --scheduler-file` writes."""
    callback: str | None = None
    """`host` or `host:port` the workers reach this pit process at; None: the address of
    the interface that routes to the scheduler, any free port."""
    connect_timeout: float = 30.0
    """Seconds to keep trying to reach the scheduler before the attempt fails saying so."""
    stage_data: bool = False
    """`data = "staged"`: a run's data folder goes to the worker and back through pit for each
    attempt, even where the worker sees its path. By default (`"auto"`) it is staged only for
    a worker that does not see it (runs_dir is not on a filesystem they share)."""


@attrs.frozen(kw_only=True)
class WorkspaceConfig:
    secrets_path: str | None = None
    """`secrets_dir` in the file (the seed's name): path of the secrets TOML file."""
    runs_dir: str = "runs"
    repo_cache_dir: str = "repo_cache"
    dbt_driver: str = DEFAULT_DBT_DRIVER
    sync_interval: float | None = None
    """Seconds between two fetches of the git-backed DAGs' clones by pit serve; None: never."""
    keep_artifacts: tuple[str, ...] = ARTIFACTS
    keep_runs: int | None = None
    """Runs of each DAG kept (its newest ended ones); a DAG's own setting wins."""
    keep_days: int | None = None
    """Days a DAG's ended runs are kept; a DAG's own setting wins."""
    archive_logs_after: float | None = None
    """Seconds after a run's end when its task logs are compressed in place."""
    max_active_tasks: int | None = None
    """A cap on concurrently running tasks of any one run, over the DAG's own setting."""
    stop_grace: float = DEFAULT_STOP_GRACE
    """Seconds a stopped task gets between SIGTERM and SIGKILL."""
    max_active_runs: int | None = None
    """`pit serve`: a cap on runs at once, over all DAGs; more wait their turn."""
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE
    """`pit serve`: seconds active runs get to finish after SIGINT/SIGTERM."""
    max_queued_runs: int = DEFAULT_MAX_QUEUED_RUNS
    """`pit serve`: accepted runs that may wait for their turn; past it a request is refused
    (a webhook's 503 with Retry-After)."""
    metadata_db: str | None = None
    api_token: str | None = None
    """`pit serve`'s API: the name of the secret holding its bearer token (reads and steers)."""
    api_read_token: str | None = None
    """The name of the secret holding a token that may only read the API."""
    age_identity: str | None = None
    secrets_recipients: str | None = None
    pools: Mapping[str, int] = attrs.field(factory=dict)
    """`[pools]`: each pool's number of slots, shared by the tasks naming it."""
    dashboard_url: str | None = None
    """The address people reach pit serve's dashboard at, for the links notifications carry."""
    executor: ExecutorConfig = attrs.field(factory=ExecutorConfig)


def parse_workspace_config(
    text: str | bytes, file: str = CONFIG_FILE, *, strict: bool = True
) -> tuple[WorkspaceConfig, list[Problem]]:
    """The config and its problems. `strict` is for `pit validate`: an unknown key is an error.
    Otherwise (`pit run`, `pit serve`) an
    unknown key is only a warning, so that a setting of a newer pit does not stop them."""
    raw, problems = parse_toml(text, file)
    if raw is None:
        return WorkspaceConfig(), problems
    r = TableReader(file, "", raw, problems)
    defaults = WorkspaceConfig()
    keep = read_artifacts(r)
    cap = r.integer("max_active_tasks", default=0, minimum=1, maximum=limits.MAX_ACTIVE)
    grace = r.duration("stop_grace")
    runs_cap = r.integer("max_active_runs", default=0, minimum=1, maximum=limits.MAX_ACTIVE)
    shutdown_grace = r.duration("shutdown_grace")
    queued_cap = r.integer("max_queued_runs", default=0, minimum=1, maximum=limits.MAX_QUEUED)
    later = {key: r.path_string(key) for key in ("metadata_db", "age_identity")}
    config = WorkspaceConfig(
        secrets_path=r.path_string("secrets_dir"),
        runs_dir=r.path_string("runs_dir") or defaults.runs_dir,
        repo_cache_dir=r.path_string("repo_cache_dir") or defaults.repo_cache_dir,
        dbt_driver=r.string("dbt_driver") or defaults.dbt_driver,
        sync_interval=r.duration("sync_interval", positive=True),
        keep_artifacts=defaults.keep_artifacts if keep is None else keep,
        keep_runs=read_keep_runs(r),
        keep_days=read_keep_days(r),
        archive_logs_after=r.duration(
            "archive_logs_after",
            positive=True,
            maximum=limits.MAX_AGE,
            maximum_text=limits.MAX_AGE_TEXT,
        ),
        max_active_tasks=cap or None,
        stop_grace=defaults.stop_grace if grace is None else grace,
        max_active_runs=runs_cap or None,
        shutdown_grace=defaults.shutdown_grace if shutdown_grace is None else shutdown_grace,
        max_queued_runs=queued_cap or defaults.max_queued_runs,
        metadata_db=later["metadata_db"],
        api_token=r.string("api_token"),
        api_read_token=r.string("api_read_token"),
        age_identity=later["age_identity"],
        secrets_recipients=r.path_string("secrets_recipients"),
        pools=_read_pools(sub) if (sub := r.table("pools")) else {},
        dashboard_url=r.string("dashboard_url"),
        executor=_read_executor(sub) if (sub := r.table("executor")) else ExecutorConfig(),
    )
    r.finish(severity=Severity.ERROR if strict else Severity.WARNING)
    return config, problems


def _read_executor(r: TableReader) -> ExecutorConfig:
    kind_text = r.string("kind") or ExecutorKind.LOCAL.value
    try:
        kind = ExecutorKind(kind_text)
    except ValueError:
        kinds = ", ".join(k.value for k in ExecutorKind)
        r.problem("kind", f"{shown(kind_text)} is not an executor", f"use {kinds}")
        kind = ExecutorKind.LOCAL
    scheduler, scheduler_file = r.string("scheduler"), r.path_string("scheduler_file")
    if kind is ExecutorKind.DASK and (scheduler is None) == (scheduler_file is None):
        r.problem(
            "scheduler",
            "a Dask executor needs its scheduler's address, or its scheduler file",
            'set scheduler = "tcp://host:8786" or scheduler_file (one of them)',
        )
    callback = r.string("callback")
    if callback is not None and not _is_callback(callback):
        r.problem(
            "callback",
            f"{shown(callback)} is not an address the workers can reach pit at",
            'use "host" or "host:port" (a name or an IPv4 address, a port 1 to 65535)',
        )
        callback = None
    timeout = r.duration("connect_timeout", positive=True)
    data = r.string("data") or "auto"
    if data not in ("auto", "staged"):
        r.problem("data", f"{shown(data)} is not a way to reach run data", 'use "auto" or "staged"')
    config = ExecutorConfig(
        kind=kind,
        scheduler=scheduler,
        scheduler_file=scheduler_file,
        callback=callback,
        connect_timeout=30.0 if timeout is None else timeout,
        stage_data=data == "staged",
    )
    r.finish()
    return config


def _is_callback(text: str) -> bool:
    host, colon, port = text.partition(":")
    if not re.fullmatch(r"[A-Za-z0-9.-]+", host):
        return False
    return not colon or (port.isdigit() and 1 <= int(port) <= 65535)


def _read_pools(r: TableReader) -> dict[str, int]:
    pools = {}
    for name in list(r.raw):
        if reason := limits.name_problem(name):
            r.value(name)
            r.problem(name, f"{shown(name)} is not a pool name: {reason}", limits.NAME_RULE)
            continue
        size = r.integer(name, default=0, minimum=1, maximum=limits.MAX_POOL)
        if size:
            pools[name] = size
    r.finish()
    return pools


def read_keep_runs(r: TableReader) -> int | None:
    """`keep_runs`, in `[dag]` or `pit_config.toml`: None when absent."""
    return r.integer("keep_runs", default=0, minimum=1, maximum=limits.MAX_KEEP_RUNS) or None


def read_keep_days(r: TableReader) -> int | None:
    """`keep_days`, in `[dag]` or `pit_config.toml`: None when absent."""
    return r.integer("keep_days", default=0, minimum=1, maximum=limits.MAX_KEEP_DAYS) or None


def read_artifacts(r: TableReader) -> tuple[str, ...] | None:
    """`keep_artifacts`, in `[dag]` or `pit_config.toml`: any of logs, project, data."""
    keep = r.strings("keep_artifacts")
    for value in keep or ():
        if value not in ARTIFACTS:
            r.problem(
                "keep_artifacts",
                f"{shown(value)} is not a run artifact",
                f"use any of {', '.join(ARTIFACTS)}",
            )
    return keep
