"""What every command gets from the global options, and the workspace they point at."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from pit.errors import WorkspaceError

if TYPE_CHECKING:  # the specs are imported when a command reads the workspace, not for --help
    from pit.spec.load import Workspace
    from pit.spec.secrets import Secrets


class CliContext(NamedTuple):  # not attrs or a dataclass: imports `pit --help` need not pay
    root: Path
    verbose: bool
    secrets: Path | None

    def workspace(self, *, config_must_be_valid: bool = True, projects: bool = True) -> Workspace:
        """The workspace. Unless told otherwise (`pit validate`, which reports everything and
        reads unknown keys strictly), an error in `pit_config.toml` stops the command and its
        warnings go to stderr: an unknown key (a newer pit's setting, or a typo) is one of them,
        so `pit run` and `pit serve` go on with the settings they know."""
        from pit.spec.load import load_workspace
        from pit.spec.workspace import CONFIG_FILE

        workspace = load_workspace(self.root, strict=not config_must_be_valid, projects=projects)
        if config_must_be_valid and workspace.config_problems:
            listing = "\n".join(f"  {p}" for p in workspace.config_problems)
            raise WorkspaceError(f"{CONFIG_FILE} has problems (see `pit validate`):\n{listing}")
        if config_must_be_valid:
            for warning in workspace.config_warnings:
                print(f"pit: {warning}", file=sys.stderr)
        return workspace

    def age_identity(self, workspace: Workspace) -> Path | None:
        """The age identity pit_config.toml names (`age_identity`), for an encrypted secrets
        file; None when it names none."""
        configured = workspace.config.age_identity
        return workspace.resolve(configured) if configured else None

    def load_secrets(self, workspace: Workspace, flag: Path | None = None) -> Secrets | None:
        """The secrets file read (decrypted if it is age's); None when there is none."""
        from pit.spec.load import load_secrets

        path = self.secrets_path(workspace, flag)
        if path is None:
            return None
        return load_secrets(path, age_identity=self.age_identity(workspace))

    def secrets_path(self, workspace: Workspace, flag: Path | None = None) -> Path | None:
        """The secrets file: a command's own --secrets, the global one, then pit_config.toml."""
        chosen = flag or self.secrets
        if chosen is not None:
            return chosen
        configured = workspace.config.secrets_path
        return workspace.resolve(configured) if configured else None
