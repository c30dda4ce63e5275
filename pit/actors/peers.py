"""Which run's task a process belongs to: how the SDK broker knows who is asking.

Every attempt's process leads a process group of its own (`process.spawn_group`). While it
runs, its task actor has the group `join` here, so the broker can take a client's pid
(SO_PEERCRED) to its task:

- **By its process group.** The client, or its nearest ancestor still in a task's group, is in
  the group of that task (a `setsid` child keeps its parent chain up to the task's leader).
- **By its marker,** for a process that pit adopted as a child subreaper after its task's tree
  came apart (see `orphans`): its environment's `PIT_RUN_ID` and `PIT_TASK_NAME`. Accepted only
  for pit's own adopted children, whose chain ends at pit with no task group on the way, and
  only while that task of that run has a group here: a process can write any environment for
  what it execs, so the marker only names a task pit is running, never makes one up, and ends
  with that task's attempt.

A process whose chain ends anywhere else (at init, at another user's process) is no task's, and
neither is one that cannot be read. What a request claims never enters into it. (A process of
the same user may still take the marker of another task pit runs: the user's own processes can
also read each other's memory; the socket folder's 0700 keeps other users out.)
"""

from __future__ import annotations

import enum
import os

import attrs

from pit.actors.orphans import environ

_MAX_DEPTH = 64
"""Ancestors walked at most: a task's tree is not deeper, and a loop of stale reads must end."""


class FoundBy(enum.StrEnum):
    GROUP = "process group"
    MARKER = "marker"
    TOKEN = "attempt token"
    """A remote attempt's runner, by the token pit gave that attempt (`pit.remote.hub`)."""


@attrs.frozen
class Member:
    run_id: str
    task: str


@attrs.frozen
class Found:
    member: Member
    by: FoundBy


_groups: dict[int, Member] = {}
"""Process group id -> the task whose attempt leads it. Process-wide, as process groups are:
pit serve's executor runs many runs' tasks, and each run's broker looks here."""


def join(group: int, member: Member) -> None:
    """Processes of `group` (and their descendants) are `member`'s, until `leave(group)`."""
    _groups[group] = member


def leave(group: int) -> None:
    _groups.pop(group, None)


def identify(pid: int) -> Found | None:
    """The task process `pid` belongs to (see the module docstring); None for none."""
    me = os.getpid()
    current = pid
    for _ in range(_MAX_DEPTH):
        try:
            member = _groups.get(os.getpgid(current))
        except OSError:  # gone: whatever it was, it cannot be placed now
            return None
        if member is not None:
            return Found(member, FoundBy.GROUP)
        parent = _parent(current)
        if parent == me:  # adopted by pit, outside every task group: an escapee, or nobody's
            return _marked(current)
        if parent is None or parent <= 1:
            return None
        current = parent
    return None


def _marked(pid: int) -> Found | None:
    entries = environ(pid)
    if entries is None:
        return None
    values = dict(e.partition(b"=")[::2] for e in entries if e.startswith(b"PIT_"))
    run_id, task = values.get(b"PIT_RUN_ID"), values.get(b"PIT_TASK_NAME")
    if not run_id or not task:
        return None
    member = Member(run_id.decode(errors="replace"), task.decode(errors="replace"))
    if member not in _groups.values():  # no such task of a run running here now
        return None
    return Found(member, FoundBy.MARKER)


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            return int(stat.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None
