"""A folder's changes, from Linux's inotify: a wait that ends early when a file arrives, is
written, moved or removed in the folder. Where inotify cannot be had (not Linux, no such
folder, out of watches) there is none, and a waiter polls on its timer alone."""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator

import trio

_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_EVENTS = 0x8 | 0x80 | 0x100 | 0x2 | 0x200 | 0x40
"""IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE, IN_MODIFY, IN_DELETE, IN_MOVED_FROM."""


class FolderChanges:
    def __init__(self, descriptor: int) -> None:
        self._fd = descriptor

    @classmethod
    @contextlib.contextmanager
    def watching(cls, folder: str) -> Iterator[FolderChanges | None]:
        """Changes of `folder` for the block; None where inotify cannot watch it."""
        changes = cls._open(folder)
        try:
            yield changes
        finally:
            if changes is not None:
                trio.lowlevel.notify_closing(changes._fd)
                os.close(changes._fd)

    @classmethod
    def _open(cls, folder: str) -> FolderChanges | None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            descriptor = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        except (OSError, AttributeError):
            return None
        if descriptor < 0:
            return None
        if libc.inotify_add_watch(descriptor, os.fsencode(folder), _EVENTS) < 0:
            os.close(descriptor)
            return None
        return cls(descriptor)

    async def wait(self, seconds: float) -> None:
        """Until the folder changes, or `seconds` have passed."""
        with trio.move_on_after(seconds):
            await trio.lowlevel.wait_readable(self._fd)
            await trio.sleep(0.05)  # a burst of events (a file being written) is one change
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._fd, 65536):
                pass
