"""The one exception hierarchy of pit.

Bad input is reported to the user as a message naming the file, key and fix; it never surfaces as a
traceback. Exceptions here carry that message. Anything else that escapes is a pit bug.
"""

from __future__ import annotations

from typing import TypeVar

E = TypeVar("E", bound=BaseException)


class PitError(Exception):
    """Base of every error pit reports to a user instead of a traceback."""


class WorkspaceError(PitError):
    """Raised when the workspace cannot be used: no `projects/` folder, an unknown DAG name, an
    unreadable `pit_config.toml` or secrets file. The message says which path and what to do."""


class RunError(PitError):
    """Raised when a run cannot start: its run directory or snapshot cannot be created."""


class LogsError(PitError):
    """Raised by `pit logs` when the asked-for run or task log does not exist."""


class SteerError(PitError):
    """Raised by `pit cancel` (and the like) when the run cannot be reached or is no run."""


def single_pit_error(error: BaseException) -> PitError | None:
    """The PitError that `error` is, or that an exception group holds alone or among other
    PitErrors (the first): what the user should read instead of a traceback. None when the group
    holds anything else (a bug, which must surface)."""
    if isinstance(error, PitError):
        return error
    if isinstance(error, BaseExceptionGroup):
        errors, rest = error.split(PitError)
        if errors is not None and rest is None:
            first: BaseException = errors
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            assert isinstance(first, PitError)
            return first
    return None


def leaves(group: BaseExceptionGroup[E]) -> list[E]:
    """The exceptions in `group` and in the groups nested in it."""
    found: list[E] = []
    for error in group.exceptions:
        found.extend(leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return found
