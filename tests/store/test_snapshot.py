"""The project snapshot: a small project is copied at once on the event loop, a bigger one by
`snapshot_project` in a worker thread; both must give the same copy."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pit.errors import RunError
from pit.store.rundir import (
    SMALL_BYTES,
    SMALL_ENTRIES,
    RunPaths,
    copy_small_project,
    list_small_project,
    snapshot_project,
)


def make_project(root: Path) -> Path:
    files = {
        "pit.toml": "[dag]\nname = 'p'\n",
        "tasks/run.sh": "#!/bin/sh\necho hi\n",
        "lib/deep/code.py": "x = 1\n",
        ".venv/bin/python": "",
        ".git/HEAD": "ref: refs/heads/main\n",
        "lib/__pycache__/code.pyc": "",
        "node_modules/pkg/index.js": "",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "tasks/run.sh").chmod(0o750)
    (root / "lib/private").mkdir(mode=0o700)
    (root / "shared").mkdir()
    (root / "shared").chmod(0o777)  # more than the umask lets mkdir give
    (root / "link.sh").symlink_to("tasks/run.sh")
    return root


def tree(root: Path) -> dict[str, tuple[int, str | None]]:
    """Each entry: its mode, and its link target or content."""
    found = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        if path.is_symlink():
            what: str | None = os.readlink(path)
        elif path.is_file():
            what = path.read_text()
        else:
            what = None
        found[str(path.relative_to(root))] = (stat.S_IMODE(info.st_mode), what)
    return found


def test_a_small_project_is_copied_as_the_full_snapshot_copies_it(tmp_path: Path) -> None:
    source = make_project(tmp_path / "source")
    full, small = RunPaths(root=tmp_path / "full"), RunPaths(root=tmp_path / "small")
    full.root.mkdir()
    small.root.mkdir()

    snapshot_project(source, full)
    entries = list_small_project(source)
    assert entries is not None
    copy_small_project(source, entries, small)

    assert tree(small.project) == tree(full.project)
    assert "link.sh" in tree(small.project)
    assert not any(
        part.startswith((".venv", ".git", "node_modules")) for part in tree(full.project)
    )
    assert "lib/__pycache__" not in tree(full.project)


@pytest.mark.parametrize(
    "grow",
    [
        lambda root: [(root / f"f{i}").write_text("") for i in range(SMALL_ENTRIES + 1)],
        lambda root: (root / "big.bin").write_bytes(b"\0" * (SMALL_BYTES + 1)),
    ],
    ids=["too many entries", "too many bytes"],
)
def test_a_bigger_project_is_left_to_the_worker_thread(tmp_path: Path, grow: object) -> None:
    source = tmp_path / "source"
    source.mkdir()
    assert list_small_project(source) == []
    grow(source)  # type: ignore[operator]
    assert list_small_project(source) is None


def test_a_project_that_cannot_be_copied_is_a_run_error(tmp_path: Path) -> None:
    source = make_project(tmp_path / "source")
    paths = RunPaths(root=tmp_path / "missing" / "run")  # its parent does not exist
    entries = list_small_project(source)
    assert entries is not None
    with pytest.raises(RunError, match="cannot snapshot"):
        copy_small_project(source, entries, paths)
