"""The one thin I/O wrapper of the spec layer: read a workspace's files and parse them."""

from __future__ import annotations

from pathlib import Path

import attrs

from pit.errors import WorkspaceError
from pit.spec.dag import DagSpec, parse_dag
from pit.spec.problems import Problem, did_you_mean
from pit.spec.secrets import Secrets, parse_secrets
from pit.spec.validate import validate_dag, validate_dag_names
from pit.spec.workspace import CONFIG_FILE, WorkspaceConfig, parse_workspace_config

PROJECTS_DIR = "projects"
DAG_FILE = "pit.toml"


@attrs.frozen(kw_only=True)
class Project:
    folder: str
    """The project's folder name under `projects/`."""
    path: Path
    file: str
    """`projects/<folder>/pit.toml`, as problems name it."""
    dag: DagSpec | None
    problems: tuple[Problem, ...]


@attrs.frozen(kw_only=True)
class Workspace:
    root: Path
    config: WorkspaceConfig
    config_problems: tuple[Problem, ...]
    projects: tuple[Project, ...]
    runs_dir: Path
    """`runs_dir` of the config, absolute and resolved once (runs are made often)."""

    @property
    def problems(self) -> list[Problem]:
        return [*self.config_problems, *(p for project in self.projects for p in project.problems)]

    def find(self, dag_name: str) -> Project:
        """The project whose DAG is `dag_name`; a WorkspaceError naming the choices otherwise."""
        for project in self.projects:
            if project.dag is not None and project.dag.name == dag_name:
                return project
        for project in self.projects:
            if project.dag is None and project.folder == dag_name:
                raise WorkspaceError(
                    f"DAG '{dag_name}' has configuration errors; run `pit validate` to see them"
                )
        names = sorted(p.dag.name for p in self.projects if p.dag)
        hint = did_you_mean(dag_name, names) or f"DAGs here: {', '.join(names) or 'none'}"
        raise WorkspaceError(f"no DAG named '{dag_name}' under {self.root / PROJECTS_DIR} ({hint})")

    def resolve(self, path: str) -> Path:
        """A path from the config, relative to the workspace root unless absolute."""
        return self.root / path


def load_workspace(root: Path) -> Workspace:
    """Read `pit_config.toml` and every `projects/*/pit.toml` under `root`, validating each."""
    if not root.is_dir():
        raise WorkspaceError(f"workspace folder {root} does not exist (check --project-dir/-C)")
    root = root.resolve()  # runs outlive the current directory: every path they keep is absolute
    config, config_problems = WorkspaceConfig(), list[Problem]()
    config_path = root / CONFIG_FILE
    if config_path.is_file():
        config, config_problems = parse_workspace_config(_read(config_path), CONFIG_FILE)
    projects = [_load_project(folder) for folder in _project_folders(root)]
    valid = [(p.file, p.dag) for p in projects if p.dag is not None]
    clashes = {problem.file: problem for problem in validate_dag_names(valid)}
    projects = [
        attrs.evolve(p, problems=(*p.problems, clashes[p.file])) if p.file in clashes else p
        for p in projects
    ]
    return Workspace(
        root=root,
        config=config,
        config_problems=tuple(config_problems),
        projects=tuple(projects),
        runs_dir=(root / config.runs_dir).resolve(),
    )


def load_secrets(path: Path) -> Secrets:
    """Parse the secrets file; any problem is fatal, since a half-read secrets file misleads."""
    if not path.is_file():
        raise WorkspaceError(f"secrets file {path} does not exist (check --secrets or secrets_dir)")
    secrets, problems = parse_secrets(_read(path), str(path))
    if problems:
        raise WorkspaceError("\n".join(str(p) for p in problems))
    return secrets


def _project_folders(root: Path) -> list[Path]:
    projects = root / PROJECTS_DIR
    if not projects.is_dir():
        raise WorkspaceError(
            f"no {PROJECTS_DIR}/ folder in {root}: create a project with `pit init <name>`, "
            "or point --project-dir/-C at a workspace"
        )
    return sorted(
        p for p in projects.iterdir() if not p.name.startswith(".") and (p / DAG_FILE).is_file()
    )


def _load_project(folder: Path) -> Project:
    file = f"{PROJECTS_DIR}/{folder.name}/{DAG_FILE}"
    try:
        text = _read(folder / DAG_FILE)
    except WorkspaceError as exc:  # one unreadable project must not hide the others' problems
        problem = Problem(file=file, message=str(exc), fix="save it as UTF-8 text readable by pit")
        return Project(folder=folder.name, path=folder, file=file, dag=None, problems=(problem,))
    dag, problems = parse_dag(text, file)
    if dag is not None:
        problems += validate_dag(dag, file, lambda script: (folder / script).exists())
    return Project(folder=folder.name, path=folder, file=file, dag=dag, problems=tuple(problems))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkspaceError(f"cannot read {path}: {exc}") from exc
