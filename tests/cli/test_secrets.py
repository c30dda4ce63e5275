"""`pit secrets keygen | get | list`, on real files (an age file written by Debian's age)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Pit, Workspace

pytestmark = pytest.mark.e2e

SECRETS = (
    '[global]\nwarehouse = "postgresql://u:pw@db/dw"\n[etl]\ntoken = "t0k3n"\n'
    '[etl.ftp]\nhost = "h"\npassword = "p\\"q"\n'
)


def test_keygen_writes_a_private_identity_that_age_accepts(pit: Pit, tmp_path: Path) -> None:
    key = tmp_path / "keys" / "age-key.txt"
    done = pit("secrets", "keygen", "--output", str(key))
    assert done.returncode == 0, done.stderr
    public = done.stdout.strip()
    assert public.startswith("age1")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    sealed = subprocess.run(["age", "-r", public], input=b"hi", capture_output=True, check=True)
    opened = subprocess.run(
        ["age", "-d", "-i", str(key)], input=sealed.stdout, capture_output=True, check=True
    )
    assert opened.stdout == b"hi"
    again = pit("secrets", "keygen", "--output", str(key))
    assert again.returncode == 2
    assert "already exists: pit never replaces an identity" in again.stderr


def test_get_and_list_read_an_encrypted_file_as_a_run_would(
    workspace: Workspace, pit: Pit, tmp_path: Path
) -> None:
    key = tmp_path / "key.txt"
    public = pit("secrets", "keygen", "-o", str(key)).stdout.strip()
    sealed = workspace.root / "secrets.toml.age"
    subprocess.run(["age", "-r", public, "-o", str(sealed)], input=SECRETS.encode(), check=True)
    workspace.shell_project("etl", {"a": "true\n"})
    workspace.config(f'secrets_dir = "secrets.toml.age"\nage_identity = "{key}"\n')

    assert pit("secrets", "get", "etl", "token").stdout == "t0k3n\n"
    assert pit("secrets", "get", "other", "warehouse").stdout == "postgresql://u:pw@db/dw\n"
    structured = pit("secrets", "get", "etl", "ftp").stdout
    assert structured == 'host = "h"\npassword = "p\\"q"\n'
    missing = pit("secrets", "get", "etl", "nope")
    assert missing.returncode == 2
    assert "secret 'nope' not found" in missing.stderr

    listed = pit("secrets", "list", "etl")
    assert listed.stdout == "[etl]\n  ftp (structured)\n  token\n[global]\n  warehouse\n"
    assert "t0k3n" not in listed.stdout
    as_json = json.loads(pit("secrets", "list", "--json").stdout)
    assert as_json == {"etl": ["ftp", "token"], "global": ["warehouse"]}


def test_encrypt_once_for_the_recipients_and_age_decrypts_it(
    workspace: Workspace, pit: Pit, tmp_path: Path
) -> None:
    key = tmp_path / "key.txt"
    public = pit("secrets", "keygen", "-o", str(key)).stdout.strip()
    workspace.write("recipients.txt", f"# the team\n{public}  # ops laptop\n")
    plain = workspace.write("secrets.toml", SECRETS)
    workspace.shell_project("etl", {"a": "true\n"})
    workspace.config('secrets_dir = "secrets.toml"\nsecrets_recipients = "recipients.txt"\n')

    done = pit("secrets", "encrypt")
    assert done.returncode == 0, done.stderr
    sealed = workspace.root / "secrets.toml.age"
    assert stat.S_IMODE(sealed.stat().st_mode) == 0o600
    opened = subprocess.run(
        ["age", "-d", "-i", str(key), str(sealed)], capture_output=True, check=True
    )
    assert opened.stdout.decode() == SECRETS
    assert plain.is_file()  # left for the user to delete
    assert not list(workspace.root.glob(".*.partial"))

    again = pit("secrets", "encrypt")
    assert again.returncode == 2
    assert "already exists: pit never replaces an encrypted file" in again.stderr

    workspace.config(
        f'secrets_dir = "secrets.toml.age"\nage_identity = "{key}"\n'
        'secrets_recipients = "recipients.txt"\n'
    )
    assert pit("secrets", "get", "etl", "token").stdout == "t0k3n\n"


def test_encrypt_refuses_a_broken_file_or_no_recipients(workspace: Workspace, pit: Pit) -> None:
    workspace.write("secrets.toml", "[global]\nbroken = \n")
    workspace.shell_project("etl", {"a": "true\n"})
    workspace.config('secrets_dir = "secrets.toml"\n')
    broken = pit("secrets", "encrypt")
    assert broken.returncode == 2
    assert "fix it first" in broken.stderr
    workspace.write("secrets.toml", SECRETS)
    unset = pit("secrets", "encrypt")
    assert "set secrets_recipients in pit_config.toml" in unset.stderr
    assert not (workspace.root / "secrets.toml.age").exists()


def encrypted_workspace(workspace: Workspace, pit: Pit, tmp_path: Path) -> tuple[Path, Path]:
    """A workspace whose secrets file is encrypted (by pit) for one identity: (file, key)."""
    key = tmp_path / "key.txt"
    public = pit("secrets", "keygen", "-o", str(key)).stdout.strip()
    workspace.write("recipients.txt", f"{public}\n")
    workspace.write("secrets.toml", SECRETS)
    workspace.shell_project("etl", {"a": "true\n"})
    workspace.config('secrets_dir = "secrets.toml"\nsecrets_recipients = "recipients.txt"\n')
    assert pit("secrets", "encrypt").returncode == 0
    (workspace.root / "secrets.toml").unlink()
    workspace.config(
        f'secrets_dir = "secrets.toml.age"\nage_identity = "{key}"\n'
        'secrets_recipients = "recipients.txt"\n'
    )
    return workspace.root / "secrets.toml.age", key


def test_set_and_remove_rewrite_the_encrypted_file_keeping_a_backup(
    workspace: Workspace, pit: Pit, tmp_path: Path
) -> None:
    sealed, key = encrypted_workspace(workspace, pit, tmp_path)
    before = sealed.read_bytes()
    assert pit("secrets", "set", "etl", "token", "n3w").returncode == 0
    assert (workspace.root / "secrets.toml.age.bak").read_bytes() == before
    assert pit("secrets", "get", "etl", "token").stdout == "n3w\n"
    from_stdin = pit("secrets", "set", "global", "api", "-", stdin="from-stdin\n")
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert pit("secrets", "get", "etl", "api").stdout == "from-stdin\n"
    fields = pit("secrets", "set", "etl", "ftp", "--field", "user=u", "--field", "host=h2")
    assert fields.returncode == 0, fields.stderr
    assert (
        pit("secrets", "get", "etl", "ftp").stdout
        == 'host = "h2"\npassword = "p\\"q"\nuser = "u"\n'
    )
    assert pit("secrets", "remove", "etl", "token").returncode == 0
    assert pit("secrets", "get", "etl", "token").returncode == 2
    assert pit("secrets", "remove", "etl", "token").returncode == 2
    # what age itself reads: the file was encrypted again each time
    opened = subprocess.run(
        ["age", "-d", "-i", str(key), str(sealed)], capture_output=True, check=True
    )
    assert b'api = "from-stdin"' in opened.stdout
    assert b"t0k3n" not in opened.stdout


def test_add_recipient_encrypts_for_the_new_key_too(
    workspace: Workspace, pit: Pit, tmp_path: Path
) -> None:
    sealed, _ = encrypted_workspace(workspace, pit, tmp_path)
    second = tmp_path / "second.txt"
    public = pit("secrets", "keygen", "-o", str(second)).stdout.strip()
    done = pit("secrets", "add-recipient", public)
    assert done.returncode == 0, done.stderr
    opened = subprocess.run(
        ["age", "-d", "-i", str(second), str(sealed)], capture_output=True, check=True
    )
    assert b"t0k3n" in opened.stdout
    assert public in (workspace.root / "recipients.txt").read_text()
    assert "not an age public key" in pit("secrets", "add-recipient", "age1nope").stderr


def test_edit_saves_only_what_parses(workspace: Workspace, pit: Pit, tmp_path: Path) -> None:
    encrypted_workspace(workspace, pit, tmp_path)
    # An "editor" that breaks the file the first time and fixes it the second.
    editor = workspace.write(
        "editor.sh",
        '#!/bin/sh\nif [ ! -e "$0.once" ]; then touch "$0.once"; echo "broken = " >> "$1"\n'
        'else grep -v "^broken" "$1" > "$1.new"; echo \'[global]\' > "$1"; '
        'echo \'added = "yes"\' >> "$1"; grep -v \'^\\[global\\]\' "$1.new" >> "$1"; fi\n',
    )
    editor.chmod(0o755)
    done = pit("secrets", "edit", env={"EDITOR": str(editor)})
    assert done.returncode == 0, done.stderr
    assert "not saved, fix it" in done.stderr
    assert pit("secrets", "get", "x", "added").stdout == "yes\n"
    # Encrypting and editing logged one change: the secret the editor added.
    changes = json.loads(pit("secrets", "audit", "--json").stdout)
    assert [(c["event"], c["project"], c["secret"]) for c in changes] == [
        ("created", "global", "added")
    ]


def test_every_change_access_and_refusal_is_in_the_audit_never_a_value(
    workspace: Workspace, pit: Pit, tmp_path: Path
) -> None:
    encrypted_workspace(workspace, pit, tmp_path)
    assert pit("secrets", "set", "etl", "api", "first-v4lue").returncode == 0
    assert pit("secrets", "set", "etl", "api", "second-v4lue").returncode == 0
    assert pit("secrets", "remove", "etl", "token").returncode == 0
    workspace.project(
        "etl",
        f"""
        [dag]
        name = "etl"

        [[tasks]]
        name = "reader"
        script = "reader.py"
        runner = "$ {sys.executable}"
        secrets = ["api"]
        """,
        {
            "reader.py": (
                "from pit_sdk import get_secret\nget_secret('api')\n"
                "try:\n    get_secret('warehouse')\nexcept Exception as exc:\n    print(exc)\n"
            )
        },
    )
    ran = pit("run", "etl")
    assert ran.returncode == 0, ran.stdout + ran.stderr

    shown = pit("secrets", "audit", "--json")
    assert shown.returncode == 0, shown.stderr
    events = json.loads(shown.stdout)
    assert [(e["event"], e["secret"], e["project"], e["task"]) for e in events] == [
        ("refused", "warehouse", "etl", "reader"),
        ("accessed", "api", "etl", "reader"),
        ("deleted", "token", "etl", None),
        ("updated", "api", "etl", None),
        ("created", "api", "etl", None),
    ]
    assert events[0]["reason"] == "not in the task's secrets list"
    assert events[0]["run_id"] == workspace.only_run("etl").name
    assert all(e["by"] for e in events[2:])
    text = pit("secrets", "audit", "--secret", "api").stdout
    assert [line.split()[2] for line in text.splitlines()] == ["accessed", "updated", "created"]
    everything = (
        text
        + shown.stdout
        + (workspace.root / ".pit").joinpath("pit.db").read_text(errors="replace")
    )
    assert "v4lue" not in everything

    # The store is an index: made again from the run folders and the changes log, it says
    # the same.
    assert pit("store", "rebuild").returncode == 0
    assert json.loads(pit("secrets", "audit", "--json").stdout) == events
