"""Secrets files encrypted with age (`secrets.toml.age`): the same TOML, X25519 recipients.

Decrypted with pyrage (the `rage` implementation of age), so a file written by the `age` tool
reads here and one written here reads with `age -d`. The identity (private key) is found in the
original Pit's order: `PIT_AGE_KEY` (the key itself), `PIT_AGE_KEY_FILE`, `age_identity` in
pit_config.toml, `~/.config/pit/age-key.txt`. The plaintext lives only in memory, and once a
secrets file is decrypted this process makes no core dump.
"""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Mapping
from pathlib import Path

from pit.errors import WorkspaceError

SUFFIX = ".age"
DEFAULT_IDENTITY = Path("~/.config/pit/age-key.txt")
_KEY_PREFIX = "AGE-SECRET-KEY-1"


def is_encrypted(path: Path) -> bool:
    return path.suffix == SUFFIX


def decrypt(path: Path, data: bytes, *, configured: Path | None, env: Mapping[str, str]) -> bytes:
    """The plaintext of the age file `path` (its bytes `data`); WorkspaceError in one line when
    no identity is found or none opens it (wrong key, another recipient, a damaged file)."""
    import pyrage  # only when a file is encrypted: its extension loads in a few ms
    from pyrage import x25519

    where, keys = _identity(configured, env)
    try:
        identities = [x25519.Identity.from_str(key) for key in keys]
    except Exception as exc:  # pyrage raises its own error types, not all exported
        raise WorkspaceError(
            f"the age identity from {where} is not an age secret key: {exc}"
        ) from None
    _no_core_dumps()
    try:
        return pyrage.decrypt(data, identities)
    except Exception as exc:  # wrong key, another recipient, truncated: pyrage's DecryptError
        raise WorkspaceError(
            f"cannot decrypt {path} with the identity from {where}: {_reason(exc)}"
        ) from None


def _identity(configured: Path | None, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Where the identity came from, and its keys."""
    if key := env.get("PIT_AGE_KEY", "").strip():
        return "PIT_AGE_KEY", _keys(key, "PIT_AGE_KEY")
    candidates: list[tuple[str, Path]] = []
    if file := env.get("PIT_AGE_KEY_FILE"):
        candidates.append(("PIT_AGE_KEY_FILE", Path(file)))
    if configured is not None:
        candidates.append(("age_identity", configured))
    candidates.append(("the default", DEFAULT_IDENTITY.expanduser()))
    for source, path in candidates:
        if source != "the default" or path.is_file():
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise WorkspaceError(
                    f"cannot read the age identity {path} ({source}): {exc.strerror or exc}"
                ) from None
            return f"{path} ({source})", _keys(text, str(path))
    raise WorkspaceError(
        "the secrets file is encrypted and no age identity was found: set PIT_AGE_KEY or "
        f"PIT_AGE_KEY_FILE, age_identity in pit_config.toml, or write {DEFAULT_IDENTITY}"
    )


def _keys(text: str, where: str) -> list[str]:
    keys = [line.strip() for line in text.splitlines() if line.strip().startswith(_KEY_PREFIX)]
    if not keys:
        raise WorkspaceError(f"{where} holds no age secret key ({_KEY_PREFIX}...)")
    return keys


def _reason(exc: Exception) -> str:
    said = str(exc).strip() or type(exc).__name__
    if "no matching keys" in said.lower() or "no identity" in said.lower():
        return "it was encrypted for other recipients (no key of this identity opens it)"
    return f"{said} (a damaged or truncated file, or not an age file)"


def _no_core_dumps() -> None:
    """No core dump of this process from now on: it would hold the plaintext."""
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
