"""`pit validate`: check every project and report every problem, grouped by project."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from pit.cli.context import cli_context
from pit.spec.load import load_secrets
from pit.spec.validate import validate_secret_names


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_command)


def validate_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print problems as a JSON list.")] = False,
) -> None:
    """Validate pit_config.toml and every projects/*/pit.toml. Exit code 1 if anything is wrong."""
    cli = cli_context(ctx)
    workspace = cli.workspace(config_must_be_valid=False)
    secrets_path = cli.secrets_path(workspace)
    by_project = {project.folder: list(project.problems) for project in workspace.projects}
    if secrets_path is not None:
        secrets = load_secrets(secrets_path)
        for project in workspace.projects:
            if project.dag is not None:
                by_project[project.folder] += validate_secret_names(
                    project.dag, project.file, secrets
                )
    problems = [*workspace.config_problems, *(p for ps in by_project.values() for p in ps)]
    if as_json:
        print(json.dumps([p.to_json() for p in problems], indent=2))
    else:
        if workspace.config_problems:
            _print_group("pit_config.toml", [str(p) for p in workspace.config_problems])
        for folder, found in by_project.items():
            if found:
                _print_group(folder, [str(p) for p in found])
        valid = sum(1 for found in by_project.values() if not found)
        print(f"{valid} of {len(workspace.projects)} projects valid, {len(problems)} problems")
    raise typer.Exit(1 if problems else 0)


def _print_group(title: str, lines: list[str]) -> None:
    print(f"{title}:")
    for line in lines:
        print(f"  - {line}")
