"""The `pit` command line: global options, and every subcommand wired in.

This is the composition root: commands load the workspace, build actors and call `trio.run`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from pit.cli import init, logs, outputs, run, serve, validate
from pit.cli.context import CliContext
from pit.errors import PitError

app = typer.Typer(
    name="pit",
    help="Lightweight data orchestration: DAGs of plain executables.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main_options(
    ctx: typer.Context,
    project_dir: Annotated[
        Path,
        typer.Option(
            "--project-dir",
            "-C",
            envvar="PIT_PROJECT_DIR",
            help="Workspace root: the folder holding projects/ and pit_config.toml.",
        ),
    ] = Path("."),
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Verbose output.")] = False,
    secrets: Annotated[
        Path | None,
        typer.Option(
            "--secrets", help="Secrets TOML file (overrides secrets_dir in pit_config.toml)."
        ),
    ] = None,
) -> None:
    ctx.obj = CliContext(root=project_dir, verbose=verbose, secrets=secrets)


run.register(app)
validate.register(app)
logs.register(app)
outputs.register(app)
init.register(app)
serve.register(app)


def main() -> None:
    try:
        app()
    except PitError as exc:
        print(f"pit: {exc}", file=sys.stderr)
        sys.exit(2)
