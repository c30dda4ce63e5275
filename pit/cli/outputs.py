"""`pit outputs`: the outputs registry, from every project's [[outputs]]."""

from __future__ import annotations

import fnmatch
import json

from pit.cli.context import CliContext


def outputs_command(
    cli: CliContext,
    *,
    project: str | None,
    type_: str | None,
    location: str | None,
    as_json: bool,
) -> int:
    """`pit outputs`: the declared outputs, filtered."""
    workspace = cli.workspace()
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
        return 0
    if not rows:
        print("no outputs match")
        return 0
    widths = [max(len(str(r[k])) for r in [*rows, {k: k}]) for k in ("dag", "name", "type")]
    print(f"{'dag':<{widths[0]}}  {'name':<{widths[1]}}  {'type':<{widths[2]}}  location")
    for row in rows:
        print(
            f"{row['dag']:<{widths[0]}}  {row['name']:<{widths[1]}}  {row['type']:<{widths[2]}}  "
            f"{row['location']}"
        )
    return 0
