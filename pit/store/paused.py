"""Which DAGs are paused: `.pit/paused.json`, so that a pause outlives pit serve.

A paused DAG's schedule, FTP watch and webhook start nothing; a run asked for by hand (`pit
run`, the API) still starts. Blocking file work: pit serve calls it from a worker thread.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import attrs

from pit.store.files import write_atomically

PAUSED_FILE = ".pit/paused.json"


@attrs.frozen(kw_only=True)
class Pause:
    at: dt.datetime
    by: str


def read_paused(root: Path) -> dict[str, Pause]:
    """DAG name -> its pause; an unreadable file pauses nothing (and says nothing: `pit
    status` shows what is paused, and a pause written again replaces it)."""
    try:
        raw = json.loads((root / PAUSED_FILE).read_bytes())
        return {
            str(dag): Pause(at=dt.datetime.fromisoformat(entry["at"]), by=str(entry["by"]))
            for dag, entry in raw.items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def set_paused(root: Path, dag: str, pause: Pause | None) -> dict[str, Pause]:
    """Pause `dag` (or resume it: `pause` None); what is paused now."""
    paused = read_paused(root)
    if pause is None:
        paused.pop(dag, None)
    else:
        paused[dag] = pause
    path = root / PAUSED_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    text = {name: {"at": p.at.isoformat(), "by": p.by} for name, p in sorted(paused.items())}
    write_atomically(path, json.dumps(text, indent=2).encode())
    return paused
