"""What every command gets from the global options, and the workspace they point at."""

from __future__ import annotations

from pathlib import Path

import attrs
import typer

from pit.spec.load import Workspace, load_workspace


@attrs.frozen(kw_only=True)
class CliContext:
    root: Path
    verbose: bool
    secrets: Path | None

    def workspace(self) -> Workspace:
        return load_workspace(self.root)

    def secrets_path(self, workspace: Workspace, flag: Path | None = None) -> Path | None:
        """The secrets file: a command's own --secrets, the global one, then pit_config.toml."""
        chosen = flag or self.secrets
        if chosen is not None:
            return chosen
        configured = workspace.config.secrets_path
        return workspace.resolve(configured) if configured else None


def cli_context(ctx: typer.Context) -> CliContext:
    assert isinstance(ctx.obj, CliContext)
    return ctx.obj
