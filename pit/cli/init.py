"""`pit init <name> --type python|sql|shell|dbt`: scaffold a project that validates as created."""

from __future__ import annotations

import re
from pathlib import Path

from pit.cli.context import CliContext
from pit.cli.scaffolds import DBT_SECRET, EXECUTABLE_SUFFIXES, SCAFFOLDS
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
    run = f"pit -C {root} run {name}"
    if type_ == "dbt":
        run = _dbt_secret(cli, name) or run
    print(f"  run:      {run}")
    return 0


def _dbt_secret(cli: CliContext, name: str) -> str | None:
    """Write the dbt project's connection secret to `<name>.secrets.toml` at the workspace
    root, unless a secrets file is in use (then say what to add to it); the command that runs
    the project, when it needs `--secrets`."""
    secret = DBT_SECRET.format(name=name, file=f"{name}.secrets.toml")
    in_use = cli.secrets_path(cli.workspace(config_must_be_valid=False))
    if in_use is not None:
        print(f"  add its connection to {in_use}:")
        print("".join(f"    {line}\n" for line in secret.splitlines() if line and line[0] != "#"))
        return None
    path = cli.root / f"{name}.secrets.toml"
    if not path.exists():
        path.write_text(secret, encoding="utf-8")
        path.chmod(0o600)
        print(f"  wrote its connection secret (a DuckDB file in the workspace) to {path}")
    return f"pit -C {cli.root} --secrets {path} run {name}"
