"""The FTP watch ledger: which remote files started runs, and how those runs ended.

Persisted under the workspace (`.pit/ftp/<dag>.json`, written atomically) so that a restart of
`pit serve` neither re-runs archived work nor retries a file whose run failed before it changed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import attrs

from pit.spec.states import RunState
from pit.store.files import write_atomically

EntryState = Literal["running", "failed", "done"]


@attrs.frozen(kw_only=True)
class LedgerEntry:
    size: int
    modified: str | None
    state: EntryState
    run_id: str

    def same_file(self, size: int, modified: str | None) -> bool:
        return self.size == size and self.modified == modified


def ledger_path(workspace: Path, dag: str, kind: str = "ftp") -> Path:
    """The ledger of a DAG's FTP watch (`kind` "ftp") or folder watch ("dir")."""
    return workspace / ".pit" / kind / f"{dag}.json"


class LedgerUnreadable(ValueError):
    """The ledger file is not one pit wrote (damaged, edited by hand): it is set aside."""


def read_ledger(path: Path) -> dict[str, LedgerEntry]:
    """The ledger as written. A damaged one raises `LedgerUnreadable`; see `recover_ledger`."""
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {
            str(remote): LedgerEntry(
                size=int(e["size"]),
                modified=None if e["modified"] is None else str(e["modified"]),
                run_id=str(e["run_id"]),
                state=_state(e["state"]),
            )
            for remote, e in raw.items()
        }
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise LedgerUnreadable(f"{path}: {exc}") from exc


def _state(value: object) -> EntryState:
    if value not in ("running", "failed", "done"):
        raise ValueError(f"unknown state {value!r}")
    return value


def recover_ledger(path: Path) -> tuple[dict[str, LedgerEntry], str | None]:
    """The ledger, or, when it is damaged, an empty one with the damaged file moved aside
    (`<name>.damaged`) and a sentence saying so."""
    try:
        return read_ledger(path), None
    except LedgerUnreadable as exc:
        kept = path.with_name(path.name + ".damaged")
        path.replace(kept)
        return {}, f"the FTP ledger was unreadable ({exc}); kept as {kept.name}, started afresh"


def settle_ledger(
    entries: dict[str, LedgerEntry], outcomes: dict[str, RunState | None]
) -> tuple[dict[str, LedgerEntry], list[str]]:
    """Entries still `running` when pit last stopped, settled from how their runs ended
    (`outcomes`: run id -> its final state, None when it never finished): a success is done
    (its files still to archive, returned), a failure failed (not retried until the file
    changes), a run that never finished forgotten, so its files run again."""
    settled, to_archive = {}, []
    for remote, entry in entries.items():
        if entry.state != "running":
            settled[remote] = entry
            continue
        outcome = outcomes.get(entry.run_id)
        if outcome is RunState.SUCCESS:
            settled[remote] = attrs.evolve(entry, state="done")
            to_archive.append(remote)
        elif outcome is RunState.FAILED:
            settled[remote] = attrs.evolve(entry, state="failed")
    return settled, to_archive


def write_ledger(path: Path, entries: dict[str, LedgerEntry]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps({remote: attrs.asdict(e) for remote, e in entries.items()}, indent=1)
    write_atomically(path, data.encode())
