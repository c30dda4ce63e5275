"""`pit secrets keygen | get | list`: an age identity, and a look at the secrets pit reads.

`get` and `list` read the secrets file as a run would (decrypting an age file with the same
identity), so they show what tasks will be given. `list` names secrets, never their values.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from pit.cli.context import CliContext
from pit.clock import SystemClock
from pit.errors import WorkspaceError
from pit.spec.agefile import DEFAULT_IDENTITY
from pit.spec.secrets import GLOBAL, SecretNotFound, Secrets


def keygen_command(*, output: Path | None) -> int:
    """Write a new age identity (0600, refusing to replace one) and print its public key."""
    from pyrage import x25519  # only here and where a file is decrypted

    path = (output or DEFAULT_IDENTITY).expanduser()
    identity = x25519.Identity.generate()
    public = str(identity.to_public())
    text = (
        f"# created: {SystemClock().now().isoformat(timespec='seconds')}\n"
        f"# public key: {public}\n{identity}\n"
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise WorkspaceError(f"{path} already exists: pit never replaces an identity") from None
    except OSError as exc:
        raise WorkspaceError(f"cannot write {path}: {exc.strerror or exc}") from None
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
    print(f"pit: wrote the age identity {path} (keep it private; back it up)", file=sys.stderr)
    print(public)
    return 0


def get_command(cli: CliContext, *, project: str, key: str) -> int:
    """Print one secret: a plain one as it is, a structured one as TOML."""
    try:
        secret = _secrets(cli).find(project, key)
    except SecretNotFound as exc:
        raise WorkspaceError(str(exc)) from None
    if isinstance(secret, str):
        print(secret)
    else:
        for field, value in secret.items():
            print(f"{field} = {json.dumps(value)}")  # a JSON string is a TOML basic string
    return 0


def list_command(cli: CliContext, *, project: str | None, as_json: bool) -> int:
    """The secrets' names by section (never their values)."""
    sections = _secrets(cli).sections
    chosen = {
        name: sorted(section)
        for name, section in sorted(sections.items())
        if project is None or name in (project, GLOBAL)
    }
    if as_json:
        print(json.dumps(chosen, indent=2))
        return 0
    for name, keys in chosen.items():
        print(f"[{name}]")
        for key in keys:
            kind = "" if isinstance(sections[name][key], str) else " (structured)"
            print(f"  {key}{kind}")
    if not chosen:
        print("no secrets" + (f" for {project}" if project else ""))
    return 0


def _secrets(cli: CliContext) -> Secrets:
    workspace = cli.workspace(config_must_be_valid=False)
    loaded = cli.load_secrets(workspace)
    if loaded is None:
        raise WorkspaceError("no secrets file: give --secrets FILE or set secrets_dir")
    return loaded
