"""`pit init <name> --type python|sql|shell|dbt`: scaffold a project that validates as created."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from pit.cli.context import cli_context
from pit.cli.scaffolds import EXECUTABLE_SUFFIXES, SCAFFOLDS
from pit.errors import WorkspaceError
from pit.spec.load import PROJECTS_DIR

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def register(app: typer.Typer) -> None:
    app.command("init")(init_command)


def init_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Project (and DAG) name.")],
    type_: Annotated[
        str, typer.Option("--type", "-t", help="python, sql, shell or dbt.")
    ] = "python",
) -> None:
    """Create projects/<name>/ with a pit.toml and example tasks."""
    if type_ not in SCAFFOLDS:
        raise WorkspaceError(f"unknown project type '{type_}' (use {', '.join(SCAFFOLDS)})")
    if not _NAME.fullmatch(name):
        raise WorkspaceError(
            f"'{name}' is not a usable project name: start with a letter, then "
            "letters, digits, '_' or '-'"
        )
    root = cli_context(ctx).root
    target = root / PROJECTS_DIR / name
    if target.exists():
        raise WorkspaceError(f"{target} already exists; choose another name")
    package = name.replace("-", "_").lower()
    for relative, template in SCAFFOLDS[type_].items():
        path = target / relative.format(package=package)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(name=name, package=package), encoding="utf-8")
        if path.suffix in EXECUTABLE_SUFFIXES:
            path.chmod(0o755)
    print(f"created {type_} project {target}")
    print(f"  validate: pit -C {root} validate")
    if type_ != "dbt":
        print(f"  run:      pit -C {root} run {name}")
