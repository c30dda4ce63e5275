"""`pit outputs`: the outputs registry, from every project's [[outputs]]."""

from __future__ import annotations

import fnmatch
import json
from typing import Annotated

import typer

from pit.cli.context import cli_context


def register(app: typer.Typer) -> None:
    app.command("outputs")(outputs_command)


def outputs_command(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option("--project", help="Only this DAG.")] = None,
    type_: Annotated[str | None, typer.Option("--type", help="Only this output type.")] = None,
    location: Annotated[
        str | None, typer.Option("--location", help="Glob on the location, e.g. 'warehouse.*'.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List declared outputs, optionally filtered."""
    workspace = cli_context(ctx).workspace()
    rows = [
        {"dag": p.dag.name, "name": o.name, "type": o.type, "location": o.location, **o.extra}
        for p in workspace.projects
        if p.dag is not None
        for o in p.dag.outputs
        if (project is None or p.dag.name == project)
        and (type_ is None or o.type == type_)
        and (location is None or fnmatch.fnmatchcase(o.location, location))
    ]
    rows.sort(key=lambda row: (row["dag"], row["name"]))
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print("no outputs match")
        return
    widths = [max(len(str(r[k])) for r in [*rows, {k: k}]) for k in ("dag", "name", "type")]
    print(f"{'dag':<{widths[0]}}  {'name':<{widths[1]}}  {'type':<{widths[2]}}  location")
    for row in rows:
        print(
            f"{row['dag']:<{widths[0]}}  {row['name']:<{widths[1]}}  {row['type']:<{widths[2]}}  "
            f"{row['location']}"
        )
