"""Rules that need more than one key: the task graph, script files, names across projects.

They run on what parsed (`DagDraft`), so a task that did not parse hides no cycle or missing
dependency of the others: `pit validate` reports everything in one pass.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping

from pit.spec.connections import connection_problem
from pit.spec.cron import cron_problem
from pit.spec.dag import DagDraft, DagSpec, RunnerKind
from pit.spec.graph import find_cycle
from pit.spec.problems import Problem, did_you_mean
from pit.spec.secrets import SecretNotFound, Secrets


def validate_dag(
    dag: DagSpec | DagDraft,
    file: str,
    script_exists: Callable[[str], bool],
    pools: Mapping[str, int] | None = None,
) -> list[Problem]:
    """Every cross-key problem of one DAG; `script_exists` takes paths relative to the project;
    `pools`, when known, are the workspace's `[pools]`, which a task's `pool` must name."""
    draft = dag if isinstance(dag, DagDraft) else DagDraft.of(dag)
    spec = draft.spec
    problems: list[Problem] = []

    def add(key: str, message: str, fix: str = "") -> None:
        problems.append(Problem(file=file, key=key, message=message, fix=fix))

    names = [task.name for task in spec.tasks]
    for name, count in Counter(names).items():
        if count > 1:
            index = draft.positions[[i for i, n in enumerate(names) if n == name][1]]
            add(
                f"tasks[{index}].name", f"duplicate task name '{name}'", "task names must be unique"
            )
    known = set(names) | draft.written_names
    default_connection = spec.sql.connection if spec.sql else None
    for index, task in zip(draft.positions, spec.tasks, strict=True):
        for dep in task.depends_on:
            if dep == task.name:
                add(f"tasks[{index}].depends_on", f"task '{task.name}' depends on itself")
            elif dep not in known:
                add(
                    f"tasks[{index}].depends_on",
                    f"unknown task '{dep[:100]}'",
                    did_you_mean(dep, known) or f"tasks are: {', '.join(dict.fromkeys(names))}",
                )
        if pools is not None and task.pool is not None and task.pool not in pools:
            add(
                f"tasks[{index}].pool",
                f"no pool '{task.pool}' in pit_config.toml",
                did_you_mean(task.pool, pools)
                or f"add it under [pools] in pit_config.toml ({task.pool} = 3)",
            )
        if task.runner.kind is RunnerKind.SQL and not (task.sql.connection or default_connection):
            add(
                f"tasks[{index}].connection",
                f"a SQL {task.type} task needs a database connection",
                'set connection = "<secret name>" here, or in [dag.sql] for every SQL task',
            )
        if task.runner.kind is RunnerKind.DBT:
            if spec.dbt is None:
                add(
                    f"tasks[{index}].runner",
                    "a dbt task needs a [dag.dbt] table",
                    "add [dag.dbt] with version, adapter, project_dir and connection",
                )
        elif task.script and not spec.git_backed and not script_exists(task.script):
            add(
                f"tasks[{index}].script",
                f"script '{task.script}' does not exist",
                "create it, or fix the path, which is relative to the project folder",
            )
        for kind, hook in (("on_failure", task.on_failure), ("on_success", task.on_success)):
            if hook and not spec.git_backed and not script_exists(hook):
                add(f"tasks[{index}].{kind}", f"script '{hook}' does not exist")
    edges: dict[str, list[str]] = {}
    for task in spec.tasks:  # a duplicated name keeps the edges of both, so no cycle hides
        edges.setdefault(task.name, []).extend(d for d in task.depends_on if d != task.name)
    cycle = find_cycle(edges)
    if cycle:
        add("tasks", f"dependency cycle: {' -> '.join(cycle)}", "remove one of these depends_on")
    if spec.schedule is not None and (reason := cron_problem(spec.schedule)):
        add("dag.schedule", reason, "e.g. '0 6 * * *' for 06:00 daily")
    starters = ("schedule", "ftp_watch", "dir_watch", "after")
    without_params = next((key for key in starters if getattr(spec, key)), None)
    for param in spec.params:
        if param.required and without_params:
            add(
                f"dag.params.{param.name}",
                f"is required, but the DAG's {without_params} starts runs without params",
                "give it a default (a date can be '{{ scheduled_date }}')",
            )
    if (
        spec.dbt
        and spec.dbt.project_dir
        and not spec.git_backed
        and not script_exists(f"{spec.dbt.project_dir}/dbt_project.yml")
    ):
        add(
            "dag.dbt.project_dir",
            f"no dbt_project.yml in '{spec.dbt.project_dir}'",
            "point project_dir at the dbt project's root folder",
        )
    return problems


def validate_dag_names(dags: Iterable[tuple[str, DagSpec]]) -> list[Problem]:
    """A problem for each DAG whose name another project already uses. Items are (file, dag)."""
    first: dict[str, str] = {}
    problems = []
    for file, dag in dags:
        if dag.name in first:
            problems.append(
                Problem(
                    file=file,
                    key="dag.name",
                    message=f"DAG name '{dag.name}' is already used by {first[dag.name]}",
                    fix="DAG names must be unique across projects",
                )
            )
        else:
            first[dag.name] = file
    return problems


def validate_secret_names(dag: DagSpec, file: str, secrets: Secrets) -> list[Problem]:
    """Every secret the DAG names (SQL connections, dbt, webhook, FTP, `secrets` lists) that
    the secrets file lacks, looked up as a run would: the DAG's section, then [global]. A SQL
    connection that names no database pit supports (`mysql://`) is a problem too."""
    named: list[tuple[str, str]] = []
    sql_keys: set[str] = set()
    default_connection = dag.sql.connection if dag.sql else None
    for index, task in enumerate(dag.tasks):
        if task.runner.kind is RunnerKind.SQL:
            key = f"tasks[{index}].connection" if task.sql.connection else "dag.sql.connection"
            name = task.sql.connection or default_connection
            if name:
                named.append((key, name))
                sql_keys.add(key)
    if dag.dbt and dag.dbt.connection:
        named.append(("dag.dbt.connection", dag.dbt.connection))
    if dag.webhook:
        named.append(("dag.webhook.token_secret", dag.webhook.token_secret))
    if dag.ftp_watch:
        # A host written in pit.toml means the original's form, where the key is password_secret.
        key = "password_secret" if dag.ftp_watch.host else "secret"
        named.append((f"dag.ftp_watch.{key}", dag.ftp_watch.secret))
    for key, names in _secret_lists(dag):
        named.extend((f"{key}[{i}]", name) for i, name in enumerate(names))
    problems = []
    for key, name in dict(named).items():
        try:
            value = secrets.find(dag.name, name)
        except SecretNotFound:
            problems.append(
                Problem(
                    file=file,
                    key=key,
                    message=f"secret '{name}' is not in the secrets file",
                    fix=f"add it under [{dag.name}] or [global]",
                )
            )
            continue
        if key in sql_keys and (found := connection_problem(value)):
            message, fix = found
            problems.append(
                Problem(file=file, key=key, message=f"secret '{name}' {message}", fix=fix)
            )
    return problems


def _secret_lists(dag: DagSpec) -> Iterator[tuple[str, tuple[str, ...]]]:
    if dag.secrets is not None:
        yield "dag.secrets", dag.secrets
    for index, task in enumerate(dag.tasks):
        if task.secrets is not None:
            yield f"tasks[{index}].secrets", task.secrets


def validate_dag_links(dags: Iterable[tuple[str, DagSpec]]) -> list[Problem]:
    """The DAGs each DAG's `requires` and `[dag.after]` name must be in the workspace, and
    `[dag.after]` must not go round (DAGs starting each other for ever). Items are (file, dag)."""
    files = {dag.name: file for file, dag in dags}
    specs = {dag.name: dag for _, dag in dags}
    problems = []
    for name, dag in specs.items():
        named = [("dag.requires", r.dag) for r in dag.requires]
        named += [("dag.after.dags", other) for other in (dag.after.dags if dag.after else ())]
        for key, other in named:
            if other not in specs:
                fix = did_you_mean(other, specs) or f"DAGs here: {', '.join(sorted(specs))}"
                problems.append(
                    Problem(file=files[name], key=key, message=f"no DAG '{other}' here", fix=fix)
                )
    edges = {
        name: [d for d in (s.after.dags if s.after else ()) if d in specs]
        for name, s in specs.items()
    }
    if cycle := find_cycle(edges):
        for name in dict.fromkeys(cycle):
            problems.append(
                Problem(
                    file=files[name],
                    key="dag.after.dags",
                    message=f"DAGs that would start each other for ever: {' -> '.join(cycle)}",
                    fix="remove one of these [dag.after]",
                )
            )
    return problems
