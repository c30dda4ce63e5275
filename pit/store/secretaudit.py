"""The changes `pit secrets` makes to a workspace's secrets, as an append-only log.

`.pit/secret_changes.jsonl` holds one line per secret created, updated or deleted (project,
secret, time, who), never a value. It is the record, as a run's `secret_access.jsonl` is for
its accesses; the run store indexes both (`RunStore.put_secret_changes`), and `rebuild` reads it
again.

Blocking: the CLI calls it.
"""

from __future__ import annotations

import enum
import getpass
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from pit.store.files import append_synced
from pit.store.rundir import read_jsonl

CHANGES_FILE = ".pit/secret_changes.jsonl"


class Change(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


@attrs.frozen(kw_only=True)
class SecretChange:
    event: Change
    project: str
    secret: str
    at: str
    by: str

    def to_json(self) -> dict[str, str]:
        return {
            "event": self.event.value,
            "project": self.project,
            "secret": self.secret,
            "at": self.at,
            "by": self.by,
        }


def changes_between(
    before: Mapping[tuple[str, str], object], after: Mapping[tuple[str, str], object]
) -> Iterator[tuple[Change, str, str]]:
    """(event, project, secret) for each secret that differs from `before` to `after`, both
    keyed by (section, secret), in a stable order."""
    for key in sorted(before.keys() | after.keys()):
        if key not in before:
            yield Change.CREATED, *key
        elif key not in after:
            yield Change.DELETED, *key
        elif before[key] != after[key]:
            yield Change.UPDATED, *key


def record_changes(workspace: Path, changes: Iterable[SecretChange]) -> None:
    """Append `changes` to the workspace's log (made mode 0600), synced to disk."""
    lines = "".join(json.dumps(change.to_json()) + "\n" for change in changes)
    if lines:
        append_synced(workspace / CHANGES_FILE, lines)


def read_changes(workspace: Path) -> list[dict[str, Any]]:
    """The log's entries (a damaged line is skipped); none when there is no log."""
    return read_jsonl(workspace / CHANGES_FILE)


def who() -> str:
    """The user making a change, as the log names them."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's user)
        return f"uid {os.getuid()}"
