"""Where a workspace's `pit serve` listens: `.pit/serve.json`, for `pit cancel` and the like.

Written once the listener is up, removed when pit serve ends. It names the process (an owner
record, as a run's), so a file left by a pit serve that was killed is known for what it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import attrs

from pit.messages.run import RunOwner
from pit.store.files import write_atomically
from pit.store.owner import owner_alive, this_process

SERVE_FILE = ".pit/serve.json"


@attrs.frozen(kw_only=True)
class ServeAddress:
    host: str
    port: int
    owner: RunOwner

    @property
    def url(self) -> str:
        """How a client on this machine reaches it."""
        host = self.host
        if host in ("", "0.0.0.0", "::", "localhost"):
            host = "127.0.0.1"
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"


def write_serve_address(root: Path, host: str, port: int) -> Path:
    path = root / SERVE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    owner = this_process().to_json()
    write_atomically(path, json.dumps({"host": host, "port": port, "owner": owner}).encode())
    return path


def read_serve_address(root: Path) -> ServeAddress | None:
    """The address of the workspace's pit serve; None when none runs (no file, a damaged one,
    or one left by a pit serve that is gone)."""
    try:
        raw = json.loads((root / SERVE_FILE).read_bytes())
        address = ServeAddress(
            host=str(raw["host"]), port=int(raw["port"]), owner=RunOwner(**raw["owner"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return address if owner_alive(address.owner) else None
