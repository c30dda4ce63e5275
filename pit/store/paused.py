"""Which DAGs are paused: `.pit/paused.json`, so that a pause outlives pit serve.

A paused DAG's schedule, FTP watch and webhook start nothing; a run asked for by hand (`pit
run`, the API) still starts. Blocking file work: pit serve calls it from a worker thread.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import attrs

from pit.errors import PitError
from pit.store.files import write_atomically

PAUSED_FILE = ".pit/paused.json"


@attrs.frozen(kw_only=True)
class Pause:
    at: dt.datetime
    by: str


def read_paused(root: Path) -> dict[str, Pause]:
    """DAG name -> its pause (none when there is no file). A damaged file raises
    `PausedFileError`: the caller says so, and goes on with nothing paused."""
    path = root / PAUSED_FILE
    try:
        raw = json.loads(path.read_bytes())
        return {
            str(dag): Pause(at=dt.datetime.fromisoformat(entry["at"]), by=str(entry["by"]))
            for dag, entry in raw.items()
        }
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PausedFileError(
            f"{path} cannot be read ({exc}): no DAG is taken as paused; pause them again "
            "(`pit pause <dag>`), which writes it afresh"
        ) from exc


def read_paused_or_warn(root: Path, warn: Callable[[str], None]) -> dict[str, Pause]:
    """`read_paused`, with a damaged file said through `warn` and read as nothing paused."""
    try:
        return read_paused(root)
    except PausedFileError as exc:
        warn(str(exc))
        return {}


class PausedFileError(PitError):
    pass


def set_paused(root: Path, dag: str, pause: Pause | None) -> dict[str, Pause]:
    """Pause `dag` (or resume it: `pause` None); what is paused now."""
    paused = read_paused_or_warn(root, lambda why: None)  # written afresh: the damage goes
    if pause is None:
        paused.pop(dag, None)
    else:
        paused[dag] = pause
    path = root / PAUSED_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    text = {name: {"at": p.at.isoformat(), "by": p.by} for name, p in sorted(paused.items())}
    write_atomically(path, json.dumps(text, indent=2).encode())
    return paused
