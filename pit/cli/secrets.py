"""`pit secrets keygen | encrypt | get | list`: an age identity, an encrypted secrets file, and a
look at the secrets pit reads.

`get` and `list` read the secrets file as a run would (decrypting an age file with the same
identity), so they show what tasks will be given. `list` names secrets, never their values.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import attrs

from pit.cli.context import CliContext
from pit.clock import SystemClock, local_zone
from pit.errors import WorkspaceError
from pit.spec.agefile import DEFAULT_IDENTITY, SUFFIX, is_encrypted
from pit.spec.load import Workspace
from pit.spec.secrets import GLOBAL, SecretNotFound, Secrets, dump_secrets, parse_secrets
from pit.store.secretaudit import (
    CHANGES_FILE,
    SecretChange,
    changes_between,
    read_changes,
    record_changes,
    who,
)


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


def encrypt_command(cli: CliContext, *, source: Path | None, output: Path | None) -> int:
    """Encrypt a plaintext secrets file for the workspace's recipients (`secrets_recipients`),
    once: the file must parse, and an existing encrypted file is never replaced."""
    import pyrage
    from pyrage import x25519

    workspace = cli.workspace(config_must_be_valid=False)
    plain = source or cli.secrets_path(workspace)
    if plain is None or is_encrypted(plain):
        raise WorkspaceError(
            "name the plaintext secrets file to encrypt: pit secrets encrypt --input secrets.toml"
        )
    try:
        text = plain.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkspaceError(f"cannot read {plain}: {exc}") from None
    _, problems = parse_secrets(text, str(plain))
    if problems:
        raise WorkspaceError("fix it first: " + "; ".join(str(p) for p in problems))
    recipients = [x25519.Recipient.from_str(key) for key in _recipients(workspace)]
    target = output or plain.with_name(plain.name + SUFFIX)
    if target.exists():
        raise WorkspaceError(f"{target} already exists: pit never replaces an encrypted file")
    write_private(target, pyrage.encrypt(text.encode(), recipients))
    print(f"encrypted {plain} for {len(recipients)} recipient(s) into {target}")
    print(f"  point secrets_dir at {target.name}, then delete {plain}")
    return 0


def _recipients_file(workspace: Workspace) -> Path:
    configured = workspace.config.secrets_recipients
    if not configured:
        raise WorkspaceError(
            "set secrets_recipients in pit_config.toml: a file of age public keys (age1...), "
            "one per line (`pit secrets keygen` prints yours)"
        )
    return workspace.resolve(configured)


def _recipients(workspace: Workspace) -> list[str]:
    """The public keys of `secrets_recipients` (one `age1...` per line; comments allowed)."""
    path = _recipients_file(workspace)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise WorkspaceError(f"cannot read the recipients {path}: {exc.strerror or exc}") from None
    keys = [line.split("#")[0].strip() for line in lines]
    keys = [key for key in keys if key]
    wrong = [key for key in keys if not key.startswith("age1")]
    if wrong or not keys:
        raise WorkspaceError(f"{path} must list age public keys (age1...), not {wrong or 'none'}")
    return keys


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` (0600) atomically: a crash leaves the old file, or none, whole."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise WorkspaceError(f"cannot write {path}: {exc.strerror or exc}") from None


def set_command(
    cli: CliContext, *, project: str, key: str, value: str | None, fields: list[str]
) -> int:
    """Set a plain secret (`value`, or stdin for `-`) or fields of a structured one (k=v)."""
    if (value is None) == (not fields):
        raise WorkspaceError("give a value, or --field name=value (repeatable), not both")
    store = _SecretsFile.open(cli)
    sections = {name: dict(entries) for name, entries in store.secrets.sections.items()}
    section = sections.setdefault(project, {})
    if value is not None:
        section[key] = sys.stdin.read().rstrip("\n") if value == "-" else value
        what = "set"
    else:
        current = section.get(key)
        table = dict(current) if isinstance(current, Mapping) else {}
        for pair in fields:
            name, sep, text = pair.partition("=")
            if not sep or not name.strip():
                raise WorkspaceError(f"--field wants name=value, not '{pair}'")
            table[name.strip()] = sys.stdin.read().rstrip("\n") if text == "-" else text
        section[key] = table
        what = f"set {len(fields)} field(s) of"
    store.save(attrs.evolve(store.secrets, sections=sections))
    print(f"{what} [{project}] {key} in {store.path}")
    return 0


def remove_command(cli: CliContext, *, project: str, key: str) -> int:
    store = _SecretsFile.open(cli)
    sections = {name: dict(entries) for name, entries in store.secrets.sections.items()}
    if key not in sections.get(project, {}):
        raise WorkspaceError(f"no secret '{key}' in [{project}] of {store.path}")
    del sections[project][key]
    marked = {k: v for k, v in store.secrets.marked.items() if k != (project, key)}
    store.save(Secrets(sections=sections, marked=marked))
    print(f"removed [{project}] {key} from {store.path}")
    return 0


def add_recipient_command(cli: CliContext, *, public_key: str) -> int:
    """Add a public key to secrets_recipients and encrypt the secrets file for all of them."""
    from pyrage import x25519

    try:
        x25519.Recipient.from_str(public_key)
    except Exception:  # pyrage's own error type
        raise WorkspaceError(f"'{public_key}' is not an age public key (age1...)") from None
    store = _SecretsFile.open(cli)
    if not store.encrypted:
        raise WorkspaceError(f"{store.path} is not encrypted: `pit secrets encrypt` it first")
    path = _recipients_file(store.workspace)
    known = _recipients(store.workspace)
    if public_key in known:
        print(f"{public_key} is a recipient already")
        return 0
    text = path.read_text(encoding="utf-8")
    write_private(path, (text + ("" if text.endswith("\n") else "\n") + public_key + "\n").encode())
    store.save(store.secrets)
    print(f"added {public_key}; {store.path} encrypted for {len(known) + 1} recipients")
    return 0


def edit_command(cli: CliContext) -> int:
    """Open the secrets in $EDITOR (from a private folder in memory where there is one), and save
    them re-encrypted once they parse; a file that does not parse reopens with the error."""
    store = _SecretsFile.open(cli)
    editor = shlex.split(os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi")
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None  # memory, not disk, when it can
    with tempfile.TemporaryDirectory(prefix="pit-secrets-", dir=base) as folder:
        draft = Path(folder) / "secrets.toml"
        write_private(draft, store.text.encode())
        while True:
            if subprocess.run([*editor, str(draft)], check=False).returncode != 0:
                raise WorkspaceError("the editor failed: nothing saved")
            text = draft.read_text(encoding="utf-8")
            secrets, problems = parse_secrets(text, str(store.path))
            if not problems:
                break
            said = "\n".join(f"# {problem}" for problem in problems)
            print(f"pit: not saved, fix it:\n{said}", file=sys.stderr)
            write_private(draft, (said + "\n" + _without_said(text)).encode())
    if text == store.text:
        print("no change")
        return 0
    store.save(secrets, text=text)
    print(f"saved {store.path}")
    return 0


def _without_said(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("# ")) + "\n"


@attrs.define
class _SecretsFile:
    """The secrets file being changed: read (decrypted) whole, written back whole."""

    workspace: Workspace
    path: Path
    text: str
    secrets: Secrets

    @property
    def encrypted(self) -> bool:
        return is_encrypted(self.path)

    @classmethod
    def open(cls, cli: CliContext) -> _SecretsFile:
        from pit.spec.load import read_secrets_text

        workspace = cli.workspace(config_must_be_valid=False)
        path = cli.secrets_path(workspace)
        if path is None:
            raise WorkspaceError("no secrets file: give --secrets FILE or set secrets_dir")
        text = read_secrets_text(path, age_identity=cli.age_identity(workspace))
        secrets, problems = parse_secrets(text, str(path))
        if problems:
            raise WorkspaceError("\n".join(str(p) for p in problems))
        return cls(workspace, path, text, secrets)

    def save(self, secrets: Secrets, *, text: str | None = None) -> None:
        """Write the secrets back (encrypted for every recipient when the file is age's),
        atomically, the previous file kept as `<file>.bak`; each secret created, updated or
        deleted is then logged (`store.secretaudit`)."""
        body = (text if text is not None else dump_secrets(secrets)).encode()
        if self.encrypted:
            import pyrage
            from pyrage import x25519

            keys = _recipients(self.workspace)
            body = pyrage.encrypt(body, [x25519.Recipient.from_str(key) for key in keys])
        if self.path.exists():
            write_private(self.path.with_name(self.path.name + ".bak"), self.path.read_bytes())
        write_private(self.path, body)
        _audit_changes(self.workspace, self.secrets, secrets)


def _audit_changes(workspace: Workspace, before: Secrets, after: Secrets) -> None:
    at, by = SystemClock().now().isoformat(timespec="milliseconds"), who()
    changes = [
        SecretChange(event=event, project=project, secret=secret, at=at, by=by)
        for event, project, secret in changes_between(_by_key(before), _by_key(after))
    ]
    if not changes:
        return
    try:
        record_changes(workspace.root, changes)
    except OSError as exc:
        raise WorkspaceError(
            f"saved the secrets, but cannot log the change in {workspace.root / CHANGES_FILE}:"
            f" {exc.strerror or exc}"
        ) from None


def _by_key(secrets: Secrets) -> dict[tuple[str, str], object]:
    """Each secret by (section, name), with what makes it differ: its value and its marks."""
    return {
        (section, name): (value, secrets.marked.get((section, name)))
        for section, entries in secrets.sections.items()
        for name, value in entries.items()
    }


def audit_command(cli: CliContext, *, secret: str | None, limit: int, as_json: bool) -> int:
    """The latest accesses, refusals and changes of secrets, newest first, from the run store
    (its index of the changes brought up to date from their log first)."""
    from pit.cli.store import indexed_store

    workspace = cli.workspace(projects=False)
    with indexed_store(workspace) as store:
        store.put_secret_changes(read_changes(workspace.root))
        events = store.secret_events(secret, limit)
    if as_json:
        print(json.dumps([event.to_json() for event in events], indent=2))
        return 0
    zone = local_zone()
    for event in events:
        at = dt.datetime.fromisoformat(event.at).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
        if event.run_id is None:
            where = f"[{event.project}] by {event.by}"
        else:
            where = f"{event.project}/{event.task or '?'} in run {event.run_id}"
            if event.found_by == "marker":  # an adopted process, known by its environment
                where += " (by its marker)"
        reason = f": {event.reason}" if event.reason else ""
        print(f"{at}  {event.event:<8}  {event.secret}  {where}{reason}")
    if not events:
        print("no secret accessed or changed yet", file=sys.stderr)
    return 0
