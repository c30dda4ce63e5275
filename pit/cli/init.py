"""`pit init <name> --type python|sql|shell|dbt`: scaffold a project that validates as created."""

from __future__ import annotations

import re
from pathlib import Path

from pit.cli.context import CliContext
from pit.cli.scaffolds import EXECUTABLE_SUFFIXES, SCAFFOLDS
from pit.errors import WorkspaceError
from pit.spec.load import PROJECTS_DIR

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def write_project(target: Path, name: str, type_: str) -> None:
    """Write the `type_` scaffold of project `name` into `target`."""
    package = name.replace("-", "_").lower()
    for relative, template in SCAFFOLDS[type_].items():
        path = target / relative.format(package=package)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(name=name, package=package), encoding="utf-8")
        if path.suffix in EXECUTABLE_SUFFIXES:
            path.chmod(0o755)


def init_command(cli: CliContext, *, name: str, type_: str) -> int:
    """`pit init`: projects/<name>/ with a pit.toml and example tasks."""
    if type_ not in SCAFFOLDS:
        raise WorkspaceError(f"unknown project type '{type_}' (use {', '.join(SCAFFOLDS)})")
    if not _NAME.fullmatch(name):
        raise WorkspaceError(
            f"'{name}' is not a usable project name: start with a letter, then "
            "letters, digits, '_' or '-'"
        )
    root = cli.root
    target = root / PROJECTS_DIR / name
    if target.exists():
        raise WorkspaceError(f"{target} already exists; choose another name")
    write_project(target, name, type_)
    print(f"created {type_} project {target}")
    print(f"  validate: pit -C {root} validate")
    if type_ != "dbt":
        print(f"  run:      pit -C {root} run {name}")
    return 0
