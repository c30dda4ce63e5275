"""Secrets files encrypted with age: written by Debian's `age` tool, read by pit, with the
identity found in the original Pit's order; every failure one clear line."""

from __future__ import annotations

import resource
import shutil
import subprocess
from pathlib import Path

import pytest

from pit.errors import WorkspaceError
from pit.spec.load import load_secrets
from tests.conftest import Pit, Workspace

SECRETS = '[global]\nwarehouse = "postgresql://u:s3cret-pw@db/dw"\n[etl.ftp]\nhost = "h"\n'


def keygen(path: Path) -> str:
    """An age identity file at `path`; its public key."""
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    return next(
        line.split(": ")[1] for line in path.read_text().splitlines() if "public key" in line
    )


@pytest.fixture
def sealed(tmp_path: Path) -> tuple[Path, Path]:
    """A secrets file encrypted by the age CLI for a fresh identity: (file, identity)."""
    if shutil.which("age") is None:
        pytest.fail("Debian's age is missing: .ci/run installs it")
    identity = tmp_path / "key.txt"
    public = keygen(identity)
    sealed = tmp_path / "secrets.toml.age"
    subprocess.run(["age", "-r", public, "-o", str(sealed)], input=SECRETS.encode(), check=True)
    return sealed, identity


def test_a_file_the_age_tool_encrypted_is_read(sealed: tuple[Path, Path]) -> None:
    path, identity = sealed
    secrets = load_secrets(path, env={"PIT_AGE_KEY_FILE": str(identity)})
    assert secrets.find("etl", "warehouse") == "postgresql://u:s3cret-pw@db/dw"
    assert dict(secrets.find("etl", "ftp")) == {"host": "h"}
    assert resource.getrlimit(resource.RLIMIT_CORE) == (0, 0)  # no core dump holds them now


def test_the_identity_is_found_in_the_originals_order(
    sealed: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, identity = sealed
    key = next(line for line in identity.read_text().splitlines() if line.startswith("AGE-"))
    wrong = tmp_path / "wrong.txt"
    keygen(wrong)
    # PIT_AGE_KEY first, then PIT_AGE_KEY_FILE, then age_identity, then the default file.
    assert load_secrets(
        path, age_identity=wrong, env={"PIT_AGE_KEY": key, "PIT_AGE_KEY_FILE": str(wrong)}
    )
    assert load_secrets(path, age_identity=wrong, env={"PIT_AGE_KEY_FILE": str(identity)})
    assert load_secrets(path, age_identity=identity, env={})
    home = tmp_path / "home"
    (home / ".config" / "pit").mkdir(parents=True)
    shutil.copy(identity, home / ".config" / "pit" / "age-key.txt")
    monkeypatch.setenv("HOME", str(home))
    assert load_secrets(path, env={})


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        ("another recipient", "it was encrypted for other recipients"),
        ("truncated", "a damaged or truncated file, or not an age file"),
        ("no identity", "the secrets file is encrypted and no age identity was found"),
        ("not a key", "holds no age secret key"),
    ],
)
def test_each_failure_is_one_line_and_no_plaintext_lands_on_disk(
    sealed: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    damage: str,
    said: str,
) -> None:
    path, identity = sealed
    monkeypatch.setenv("HOME", str(tmp_path / "nobody"))
    env = {"PIT_AGE_KEY_FILE": str(identity)}
    if damage == "another recipient":
        other = tmp_path / "other.txt"
        keygen(other)
        env = {"PIT_AGE_KEY_FILE": str(other)}
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:-40])
    elif damage == "no identity":
        env = {}
    else:
        bad = tmp_path / "bad.txt"
        bad.write_text("# just a comment\n")
        env = {"PIT_AGE_KEY_FILE": str(bad)}
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(WorkspaceError) as caught:
        load_secrets(path, env=env)
    message = str(caught.value)
    assert said in message
    assert "\n" not in message
    assert "s3cret-pw" not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.e2e
def test_pit_run_reads_an_encrypted_secrets_file_and_masks_its_values(
    sealed: tuple[Path, Path], workspace: Workspace, pit: Pit
) -> None:
    path, identity = sealed
    workspace.shell_project("etl", {"leak": "echo connecting to postgresql://u:s3cret-pw@db/dw\n"})
    workspace.config(f'secrets_dir = "{path}"\nage_identity = "{identity}"\n')
    done = pit("run", "etl")
    assert done.returncode == 0, done.stderr
    log = (workspace.run_dirs("etl")[-1] / "logs" / "leak.log").read_text()
    assert "connecting to" in log
    assert "s3cret-pw" not in log
    assert "s3cret-pw" not in done.stdout + done.stderr

    other = workspace.root / "other.txt"
    keygen(other)
    workspace.config(f'secrets_dir = "{path}"\nage_identity = "{other}"\n')
    refused = pit("run", "etl")
    assert refused.returncode == 2
    (line,) = refused.stderr.splitlines()
    assert line.startswith(f"pit: cannot decrypt {path} with the identity from {other}")
