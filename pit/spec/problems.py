"""A problem found in a configuration file: where it is, what is wrong, and how to fix it."""

from __future__ import annotations

import difflib
import enum
from collections.abc import Iterable

import attrs


class Severity(enum.Enum):
    ERROR = "error"
    """The file cannot be used as written: `pit validate` fails, `pit run` refuses."""
    WARNING = "warning"
    """Worth knowing, but nothing fails: a key kept for the original Pit's files whose feature
    has not landed yet, say."""


@attrs.frozen(kw_only=True)
class Problem:
    file: str
    """The file the problem is in, as the user would type it (relative to the workspace)."""
    key: str = ""
    """Key path inside the file, e.g. `tasks[2].script`; empty for whole-file problems."""
    message: str
    fix: str = ""
    """What to do about it, when there is something obvious to say."""
    severity: Severity = Severity.ERROR

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}" if self.key else self.file
        text = f"{where}: {self.message}"
        text = f"{text} ({self.fix})" if self.fix else text
        return text if self.is_error else f"warning: {text}"

    def to_json(self) -> dict[str, str]:
        return {
            "file": self.file,
            "key": self.key,
            "message": self.message,
            "fix": self.fix,
            "severity": self.severity.value,
        }


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.is_error]


def warnings(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if not p.is_error]


def plural(count: int, noun: str) -> str:
    """`1 problem`, `2 problems`, `0 problems`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A "did you mean 'x'?" hint for a misspelt key or name, or "" when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""


def shown(value: object, limit: int = 40) -> str:
    """`value` quoted for a message, cut short: a message must not repeat a 70,000-character
    string back to the user."""
    text = str(value)
    if not text.isprintable():  # NUL, newlines, escapes: show them as \x00, \n
        text = repr(text)[1:-1]
    return f"'{text}'" if len(text) <= limit else f"'{text[:limit]}...' ({len(text)} characters)"
