"""The FTP watch ledger: which remote files started runs, and how those runs ended.

Persisted under the workspace (`.pit/ftp/<dag>.json`, written atomically) so that a restart of
`pit serve` neither re-runs archived work nor retries a file whose run failed before it changed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import attrs

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


def ledger_path(workspace: Path, dag: str) -> Path:
    return workspace / ".pit" / "ftp" / f"{dag}.json"


def read_ledger(path: Path) -> dict[str, LedgerEntry]:
    """The ledger; an entry left `running` by a pit that died is read as `failed`: whether its
    run finished is unknown, and running it again could do its work twice."""
    if not path.is_file():
        return {}
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {
        remote: LedgerEntry(
            size=e["size"],
            modified=e["modified"],
            run_id=e["run_id"],
            state="failed" if e["state"] == "running" else e["state"],
        )
        for remote, e in raw.items()
    }


def write_ledger(path: Path, entries: dict[str, LedgerEntry]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps({remote: attrs.asdict(e) for remote, e in entries.items()}, indent=1)
    write_atomically(path, data.encode())
