"""A problem found in a configuration file: where it is, what is wrong, and how to fix it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import attrs


@attrs.frozen(kw_only=True)
class Problem:
    file: str
    """The file the problem is in, as the user would type it (relative to the workspace)."""
    key: str = ""
    """Key path inside the file, e.g. `tasks[2].script`; empty for whole-file problems."""
    message: str
    fix: str = ""
    """What to do about it, when there is something obvious to say."""

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}" if self.key else self.file
        text = f"{where}: {self.message}"
        return f"{text} ({self.fix})" if self.fix else text

    def to_json(self) -> dict[str, str]:
        return {"file": self.file, "key": self.key, "message": self.message, "fix": self.fix}


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A "did you mean 'x'?" hint for a misspelt key or name, or "" when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""
