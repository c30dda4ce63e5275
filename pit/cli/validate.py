"""`pit validate`: check every project and report every problem, grouped by project."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pit.cli.context import CliContext
from pit.spec.dag import DagSpec
from pit.spec.load import PROJECTS_DIR, load_secrets
from pit.spec.problems import Problem, plural
from pit.spec.validate import validate_secret_names
from pit.spec.workspace import CONFIG_FILE


def validate_command(
    cli: CliContext, *, as_json: bool, remote: bool = False, secrets: Path | None = None
) -> int:
    """`pit validate`: the exit code, 1 if anything is wrong (warnings alone do not fail).
    With `remote`, each git-backed DAG's ref is also looked up on its remote (git ls-remote).
    The secrets every DAG names are checked against `secrets` (else the workspace's file)."""
    workspace = cli.workspace(config_must_be_valid=False)
    secrets_path = cli.secrets_path(workspace, secrets)
    by_project = {
        project.folder: [*project.problems, *project.warnings] for project in workspace.projects
    }
    if secrets_path is not None:
        loaded = load_secrets(secrets_path, age_identity=cli.age_identity(workspace))
        for project in workspace.projects:
            if project.dag is not None:
                by_project[project.folder] += validate_secret_names(
                    project.dag, project.file, loaded
                )
    if remote:
        for project in workspace.projects:
            if project.dag is not None and project.dag.git_backed:
                by_project[project.folder] += _remote_problems(project.dag, project.file)
    config = [*workspace.config_problems, *workspace.config_warnings]
    found = [*config, *(p for ps in by_project.values() for p in ps)]
    errors = [p for p in found if p.is_error]
    if as_json:
        print(json.dumps([p.to_json() for p in found], indent=2))
    else:
        if config:
            _print_group(CONFIG_FILE, config)
        for folder, problems in by_project.items():
            if problems:
                _print_group(folder, problems)
        print(_summary(len(workspace.projects), by_project, errors, len(found) - len(errors)))
    if not workspace.projects:
        if as_json:
            print(f"pit: no projects found in {PROJECTS_DIR}/", file=sys.stderr)
        return 1
    return 1 if errors else 0


def _remote_problems(dag: DagSpec, file: str) -> list[Problem]:
    from pit.store.repos import remote_ref_problem  # only with --remote: it runs git

    assert dag.git_url is not None
    assert dag.git_ref is not None
    problem = remote_ref_problem(dag.git_url, dag.git_ref, dag.fetch_timeout)
    if problem is None:
        return []
    return [Problem(file=file, key="dag.git_ref", message=problem, fix="push it, or fix git_ref")]


def _summary(
    projects: int, by_project: dict[str, list[Problem]], errors: list[Problem], warnings: int
) -> str:
    if not projects:
        return f"no projects found in {PROJECTS_DIR}/ (create one with `pit init <name>`)"
    valid = sum(1 for found in by_project.values() if not any(p.is_error for p in found))
    line = f"{valid} of {plural(projects, 'project')} valid, {plural(len(errors), 'problem')}"
    return f"{line}, {plural(warnings, 'warning')}" if warnings else line


def _print_group(title: str, problems: list[Problem]) -> None:
    print(f"{title}:")
    for problem in problems:
        print(f"  - {problem}")
