"""Who executes a run, and whether that process still lives.

A run.json left `running` is either a run still going or a run whose pit died (kill -9, a
crash, a reboot). The run's owner (host, pid, boot, the process's start time) tells which: a
pid may be reused, a pid with the same start time in the same boot may not.
"""

from __future__ import annotations

import functools
import os

from pit.messages.run import RunOwner

_BOOT_ID = "/proc/sys/kernel/random/boot_id"


def _host() -> str:
    """This machine's name, as `socket.gethostname()` gives it (without importing socket,
    which `pit logs` need not pay for)."""
    return os.uname().nodename


@functools.cache
def this_process() -> RunOwner:
    """The owner record of this process (read once: it does not change)."""
    pid = os.getpid()
    return RunOwner(host=_host(), pid=pid, boot_id=_boot_id(), started=_started(pid))


def owner_alive(owner: RunOwner) -> bool | None:
    """True while the owner runs; False once it is gone; None when this machine cannot tell
    (another host)."""
    if owner.host != _host():
        return None
    if owner.boot_id != _boot_id():
        return False
    return _started(owner.pid) == owner.started


INTERRUPTED = "interrupted"
"""How the error of a run cut short by its pit's death begins (`pit status` marks such runs)."""


def describe_death(owner: RunOwner) -> str:
    """What a run's error says when its owner died under it (`pit status`, the API)."""
    who = f"pit (pid {owner.pid} on {owner.host})"
    return f"{INTERRUPTED} by a crash: {who} died while the run was going"


def _boot_id() -> str:
    try:
        with open(_BOOT_ID, encoding="ascii") as boot:
            return boot.read().strip()
    except OSError:  # not Linux: pids alone must tell
        return "unknown"


def _started(pid: int) -> int:
    """The process's start time in ticks since boot; -1 when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return -1
    if fields[0] in (b"Z", b"X"):  # dead, not yet reaped
        return -1
    return int(fields[19])
