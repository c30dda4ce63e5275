"""Settling the FTP ledger from how its runs ended: pure, no server."""

from __future__ import annotations

from pathlib import Path

import pytest

from pit.spec.states import RunState
from pit.store.ledger import (
    LedgerEntry,
    LedgerUnreadable,
    read_ledger,
    recover_ledger,
    settle_ledger,
    write_ledger,
)


def entry(state: str, run_id: str) -> LedgerEntry:
    return LedgerEntry(size=1, modified=None, state=state, run_id=run_id)  # type: ignore[arg-type]


def test_running_entries_are_settled_from_their_runs_outcome() -> None:
    entries = {
        "/in/ok": entry("running", "r1"),
        "/in/bad": entry("running", "r2"),
        "/in/cut": entry("running", "r3"),
        "/in/gone": entry("running", "r4"),
        "/in/old": entry("failed", "r0"),
    }
    outcomes = {"r1": RunState.SUCCESS, "r2": RunState.FAILED, "r3": RunState.CANCELLED}

    settled, to_archive = settle_ledger(entries, outcomes)

    assert {path: e.state for path, e in settled.items()} == {
        "/in/ok": "done",
        "/in/bad": "failed",
        "/in/old": "failed",
    }
    assert to_archive == ["/in/ok"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "[]",
        '{"/a": 1}',
        '{"/a": {"size": 1}}',
        '{"/a": {"size": "x", "modified": null, "state": "done", "run_id": "r"}}',
        '{"/a": {"size": 1, "modified": null, "state": "odd", "run_id": "r"}}',
        "\udcff",
    ],
)
def test_a_damaged_ledger_is_set_aside_never_a_traceback(tmp_path: Path, text: str) -> None:
    path = tmp_path / "drop.json"
    path.write_text(text, errors="surrogateescape")
    with pytest.raises(LedgerUnreadable):
        read_ledger(path)

    entries, damage = recover_ledger(path)

    assert entries == {}
    assert damage is not None
    assert "drop.json.damaged" in damage
    assert not path.exists()


def test_a_ledger_reads_back_as_written(tmp_path: Path) -> None:
    path = tmp_path / "drop.json"
    entries = {"/in/a": entry("done", "r1"), "/in/b": entry("running", "r2")}
    write_ledger(path, entries)
    assert read_ledger(path) == entries
