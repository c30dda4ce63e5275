"""Processes that leave their task's process group still end with their task.

A task's process group holds its tree until a process leaves it: `setsid sleep 300 &`, a
double-forked daemon. pit finds those by two marks:

- **Parentage.** The process that runs tasks (`pit run`, the executor of `pit serve`) makes itself
  a child subreaper (`PR_SET_CHILD_SUBREAPER`): a task's process whose parent dies is re-parented
  to pit, not to init. Once the task's group is killed, whatever is left of its tree is a child of
  pit (or a descendant of one), so finding it costs one read of pit's own children.
- **Environment.** Every task process carries `PIT_RUN_ID` and `PIT_TASK_NAME`, and so does
  whatever it starts: they say which task an adopted process belongs to. Where pit is not a
  subreaper (a test, a library caller), the whole of /proc is searched by them instead.

A process that both leaves its group and clears its environment is known only by parentage: it
ends with the run (`pit run`), not with its task.

A subreaper must reap what it adopts, or its dead children stay zombies. So every child pit
starts itself is registered (`own_child`); any other child of pit is adopted, and reaped here.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Iterator

import trio

_PR_SET_CHILD_SUBREAPER = 36
_REAP_WAIT = 1.0
"""Seconds to wait for a SIGKILLed adopted process to die before leaving it to the next sweep."""

_subreaper = False
_own: set[int] = set()
"""Children this process started itself (task leaders, the guard): never reaped here, their
owners wait for them. Process-wide, as the children of a process are."""


def adopt_orphans() -> bool:
    """Make this process the subreaper of the processes it starts; False where the kernel
    refuses (not Linux). Call once, before the first task starts."""
    global _subreaper
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        _subreaper = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        _subreaper = False
    return _subreaper


@contextlib.contextmanager
def own_child(pid: int) -> Iterator[None]:
    """While inside, `pid` is a child this process waits for itself: never reaped here."""
    _own.add(pid)
    try:
        yield
    finally:
        _own.discard(pid)


def register_child(pid: int) -> None:
    """`own_child` for a child whose life is not a `with` block; `forget_child` when reaped."""
    _own.add(pid)


def forget_child(pid: int) -> None:
    _own.discard(pid)


async def end_escapees(run_id: str, task: str | None = None, *, unmarked: bool = False) -> int:
    """SIGKILL every process that left the group of `task` of run `run_id` (any task of the run
    when `task` is None; with `unmarked`, also adopted processes that carry no run at all), with
    their descendants; reap the adopted ones. Returns how many were killed.

    Call once the task's own group is dead: its escapees are then orphans."""
    victims = _kill_escapees(run_id, task, unmarked)
    if _subreaper and victims:
        await _reap(victims)
    return len(victims)


def end_escapees_now(run_id: str, task: str) -> int:
    """`end_escapees`, blocking: for a thread that supervises a task outside trio (a Dask
    worker's runner)."""
    victims = _kill_escapees(run_id, task, False)
    if _subreaper and victims:
        pending = [pid for pid in victims if pid not in _own]
        give_up = time.monotonic() + _REAP_WAIT
        while pending and time.monotonic() < give_up:
            pending = [pid for pid in pending if not _reap_now(pid)]
            if pending:
                time.sleep(0.002)
    return len(victims)


def _kill_escapees(run_id: str, task: str | None, unmarked: bool) -> list[int]:
    marker = _marker(run_id, task)
    victims = _adopted(marker, unmarked) if _subreaper else _marked_anywhere(marker)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return victims


def _marker(run_id: str, task: str | None) -> set[bytes]:
    marker = {f"PIT_RUN_ID={run_id}".encode()}
    if task is not None:
        marker.add(f"PIT_TASK_NAME={task}".encode())
    return marker


def _adopted(marker: set[bytes], unmarked: bool) -> list[int]:
    """The trees of this process's adopted children that carry `marker` (or no run mark at
    all, with `unmarked`). Adopted children that already died are reaped on the way."""
    victims: list[int] = []
    me = os.getpid()
    # The kernel gives an orphan to the subreaper's first live thread, its main thread: only
    # that thread's children need reading (pit's other threads start only children of its own).
    for pid in _thread_children(me, me):
        if pid in _own:
            continue
        entries = environ(pid)
        if entries is None:  # a zombie (or gone): reap it, nothing to kill
            _reap_now(pid)
            continue
        mine = marker <= entries
        if mine or (unmarked and not any(e.startswith(b"PIT_RUN_ID=") for e in entries)):
            victims.extend(_tree(pid))
    return victims


def _marked_anywhere(marker: set[bytes]) -> list[int]:
    """Every process of this user whose environment carries `marker` (no subreaper to narrow
    the search)."""
    found = []
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != me:
            entries = environ(int(entry.name))
            if entries is not None and marker <= entries:
                found.append(int(entry.name))
    return found


def children(pid: int) -> list[int]:
    """The children of process `pid` (of each of its threads: a child belongs to the thread
    that started it)."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    return [child for thread in threads for child in _thread_children(pid, int(thread))]


def _thread_children(pid: int, thread: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{thread}/children", "rb") as listing:
            return [int(child) for child in listing.read().split()]
    except OSError:  # the thread or the process is gone
        return []


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants, parents first."""
    tree, index = [pid], 0
    while index < len(tree):
        tree.extend(children(tree[index]))
        index += 1
    return tree


def environ(pid: int) -> set[bytes] | None:
    """The environment `pid` was started with; None for a zombie or a process that is gone
    (or another user's)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            data = environ.read()
    except OSError:
        return None
    if not data and _is_zombie(pid):
        return None
    return set(data.split(b"\0"))


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def _reap_now(pid: int) -> bool:
    """Reap `pid` if it is a dead child of this process; True if it is gone."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # not a child (any more): nothing to reap
    return reaped == pid


async def _reap(victims: list[int]) -> None:
    """Reap the killed processes that are this process's children, waiting a little for each
    to die; a descendant of one is re-parented here as its parent dies, and reaped too."""
    pending = [pid for pid in victims if pid not in _own]
    with trio.move_on_after(_REAP_WAIT):
        while pending:
            pending = [pid for pid in pending if not _reap_now(pid)]
            if pending:
                await trio.sleep(0.002)
