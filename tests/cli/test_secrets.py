"""`pit secrets keygen | get | list`, on real files (an age file written by Debian's age)."""

from __future__ import annotations

import json
import stat
import subprocess
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
