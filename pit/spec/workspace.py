"""`pit_config.toml`: workspace-wide defaults. Every field is optional; CLI flags win over it."""

from __future__ import annotations

import attrs

from pit.spec.dag import ARTIFACTS, parse_toml, read_artifacts
from pit.spec.problems import Problem
from pit.spec.reader import TableReader

CONFIG_FILE = "pit_config.toml"
DEFAULT_STOP_GRACE = 10.0
DEFAULT_SHUTDOWN_GRACE = 60.0


@attrs.frozen(kw_only=True)
class WorkspaceConfig:
    secrets_path: str | None = None
    """`secrets_dir` in the file (the seed's name): path of the secrets TOML file."""
    runs_dir: str = "runs"
    repo_cache_dir: str = "repo_cache"
    dbt_driver: str = "ODBC Driver 17 for SQL Server"
    keep_artifacts: tuple[str, ...] = ARTIFACTS
    max_active_tasks: int | None = None
    """A cap on concurrently running tasks of any one run, over the DAG's own setting."""
    stop_grace: float = DEFAULT_STOP_GRACE
    """Seconds a stopped task gets between SIGTERM and SIGKILL."""
    max_active_runs: int | None = None
    """`pit serve`: a cap on runs at once, over all DAGs; more wait their turn."""
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE
    """`pit serve`: seconds active runs get to finish after SIGINT/SIGTERM."""


def parse_workspace_config(
    text: str, file: str = CONFIG_FILE
) -> tuple[WorkspaceConfig, list[Problem]]:
    raw, problems = parse_toml(text, file)
    if raw is None:
        return WorkspaceConfig(), problems
    r = TableReader(file, "", raw, problems)
    defaults = WorkspaceConfig()
    keep = read_artifacts(r)
    cap = r.integer("max_active_tasks", default=0, minimum=1)
    grace = r.duration("stop_grace")
    runs_cap = r.integer("max_active_runs", default=0, minimum=1)
    shutdown_grace = r.duration("shutdown_grace")
    config = WorkspaceConfig(
        secrets_path=r.string("secrets_dir"),
        runs_dir=r.string("runs_dir") or defaults.runs_dir,
        repo_cache_dir=r.string("repo_cache_dir") or defaults.repo_cache_dir,
        dbt_driver=r.string("dbt_driver") or defaults.dbt_driver,
        keep_artifacts=defaults.keep_artifacts if keep is None else keep,
        max_active_tasks=cap or None,
        stop_grace=defaults.stop_grace if grace is None else grace,
        max_active_runs=runs_cap or None,
        shutdown_grace=defaults.shutdown_grace if shutdown_grace is None else shutdown_grace,
    )
    r.finish()
    return config, problems
