"""The one thin I/O wrapper of the spec layer: read a workspace's files and parse them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from pit.errors import WorkspaceError
from pit.spec import agefile
from pit.spec.problems import Problem, did_you_mean, errors, warnings
from pit.spec.secrets import Secrets, parse_secrets
from pit.spec.workspace import CONFIG_FILE, WorkspaceConfig, parse_workspace_config

if TYPE_CHECKING:  # the DAG parser is imported when projects are read (not by `pit logs`)
    from pit.spec.dag import DagSpec

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
    """None when a part of the file could not be read at all."""
    problems: tuple[Problem, ...]
    """Errors: any one of them keeps the DAG from running."""
    warnings: tuple[Problem, ...] = ()
    """Shown by `pit validate` and `pit run`; they fail nothing."""


@attrs.frozen(kw_only=True)
class Workspace:
    root: Path
    config: WorkspaceConfig
    config_problems: tuple[Problem, ...]
    """Errors in `pit_config.toml`: commands that run something refuse to start."""
    projects: tuple[Project, ...]
    runs_dir: Path
    """`runs_dir` of the config, absolute and resolved once (runs are made often)."""
    config_warnings: tuple[Problem, ...] = ()

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


def load_workspace(root: Path, *, strict: bool = False, projects: bool = True) -> Workspace:
    """Read `pit_config.toml` and every `projects/*/pit.toml` under `root`, validating each
    (none if not `projects`: `pit logs` needs only the config).

    An unknown key in `pit_config.toml` is an error when `strict` (`pit validate`), else a
    warning: `pit run` and `pit serve` go on with the settings they know."""
    if not root.is_dir():
        raise WorkspaceError(f"workspace folder {root} does not exist (check --project-dir/-C)")
    root = root.resolve()  # runs outlive the current directory: every path they keep is absolute
    config, config_problems = WorkspaceConfig(), list[Problem]()
    config_path = root / CONFIG_FILE
    if config_path.is_file():
        config, config_problems = parse_workspace_config(
            _read(config_path), CONFIG_FILE, strict=strict
        )
    return Workspace(
        root=root,
        config=config,
        config_problems=tuple(errors(config_problems)),
        config_warnings=tuple(warnings(config_problems)),
        projects=_load_projects(root, config.pools) if projects else (),
        runs_dir=(root / config.runs_dir).resolve(),
    )


def _load_projects(root: Path, pools: Mapping[str, int]) -> tuple[Project, ...]:
    """Every project, validated, each also against the others (two DAGs of one name) and the
    workspace's pools."""
    from pit.spec.validate import validate_dag_links, validate_dag_names

    loaded = [load_project(folder, pools) for folder in project_folders(root)]
    valid = [(p.file, p.dag) for p in loaded if p.dag is not None]
    found: dict[str, list[Problem]] = {}
    for problem in [*validate_dag_names(valid), *validate_dag_links(valid)]:
        found.setdefault(problem.file, []).append(problem)
    return tuple(
        attrs.evolve(p, problems=(*p.problems, *found[p.file]), dag=None) if p.file in found else p
        for p in loaded
    )


def load_secrets(
    path: Path, *, age_identity: Path | None = None, env: Mapping[str, str] = os.environ
) -> Secrets:
    """Parse the secrets file, decrypting it first when it is age's (`.age`, `age_identity`
    being pit_config.toml's); any problem is fatal, since a half-read secrets file misleads."""
    text = read_secrets_text(path, age_identity=age_identity, env=env)
    secrets, problems = parse_secrets(text, str(path))
    if problems:
        raise WorkspaceError("\n".join(str(p) for p in problems))
    return secrets


def read_secrets_text(
    path: Path, *, age_identity: Path | None = None, env: Mapping[str, str] = os.environ
) -> str:
    """The secrets file's TOML, decrypted when it is age's."""
    if not path.is_file():
        raise WorkspaceError(f"secrets file {path} does not exist (check --secrets or secrets_dir)")
    try:
        data = _read(path)
        if agefile.is_encrypted(path):
            data = agefile.decrypt(path, data, configured=age_identity, env=env)
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WorkspaceError(f"cannot read {path}: not UTF-8 text ({exc})") from exc
    return text


def project_folders(root: Path) -> list[Path]:
    projects = root / PROJECTS_DIR
    if not projects.is_dir():
        raise WorkspaceError(
            f"no {PROJECTS_DIR}/ folder in {root}: create a project with `pit init <name>`, "
            "or point --project-dir/-C at a workspace"
        )
    return sorted(
        p for p in projects.iterdir() if not p.name.startswith(".") and (p / DAG_FILE).is_file()
    )


def load_project(folder: Path, pools: Mapping[str, int] | None = None) -> Project:
    file = f"{PROJECTS_DIR}/{folder.name}/{DAG_FILE}"
    try:
        data = _read(folder / DAG_FILE)
    except WorkspaceError as exc:  # one unreadable project must not hide the others' problems
        problem = Problem(file=file, message=str(exc), fix="make it readable by pit")
        return Project(folder=folder.name, path=folder, file=file, dag=None, problems=(problem,))
    from pit.spec.dag import read_dag
    from pit.spec.validate import validate_dag

    draft, problems = read_dag(data, file)
    if draft is not None:
        problems += validate_dag(draft, file, lambda script: _exists(folder, script), pools)
    return Project(
        folder=folder.name,
        path=folder,
        file=file,
        dag=draft.spec if draft is not None and draft.complete else None,
        problems=tuple(errors(problems)),
        warnings=tuple(warnings(problems)),
    )


def _exists(folder: Path, path: str) -> bool:
    try:
        return (folder / path).exists()
    except (OSError, ValueError):  # a name too long for the file system, say
        return False


def _read(path: Path) -> bytes:
    """The file's bytes: decoding them (UTF-8, or a problem) is the parser's job."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise WorkspaceError(f"cannot read {path}: {exc}") from exc
