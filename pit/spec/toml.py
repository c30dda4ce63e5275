"""Bytes or text -> a TOML table, with every way that can fail turned into a `Problem`.

tomllib raises more than `TOMLDecodeError`: an integer of over 4,300 digits is Python's
int-to-str limit (ValueError), deep nesting is a RecursionError. Bytes that are not UTF-8 and
tables nested deeper than any pit file needs are problems too.
"""

from __future__ import annotations

import tomllib
from typing import Any

from pit.spec.problems import Problem

MAX_DEPTH = 16
"""Tables and arrays inside each other; pit's own files need four."""


def parse_toml(text: str | bytes, file: str) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Decode TOML, turning a syntax error into a problem that names the line and column."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")  # an editor's byte-order mark is harmless
        except UnicodeDecodeError as exc:
            return None, [
                Problem(
                    file=file,
                    message=f"not UTF-8 text (byte 0x{text[exc.start]:02x} at offset {exc.start})",
                    fix="save the file as UTF-8",
                )
            ]
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, [
            Problem(file=file, message=f"not valid TOML: {exc}", fix="fix the syntax there")
        ]
    except RecursionError:
        return None, [_too_deep(file)]
    except ValueError:  # Python's limit of 4,300 digits in an integer
        return None, [
            Problem(
                file=file,
                message="not valid TOML: an integer has more than 4,300 digits",
                fix="no setting of pit takes a number that large",
            )
        ]
    if _depth(raw) > MAX_DEPTH:
        return None, [_too_deep(file)]
    return raw, []


def _too_deep(file: str) -> Problem:
    return Problem(
        file=file,
        message=f"not valid TOML: nested too deeply (more than {MAX_DEPTH} levels)",
        fix="pit's files need only a few levels of tables",
    )


def _depth(value: object) -> int:
    """How deeply tables and arrays nest in `value`; iterative, so any depth is safe."""
    deepest = 0
    todo: list[tuple[object, int]] = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        children: list[object] = (
            list(item.values())
            if isinstance(item, dict)
            else item
            if isinstance(item, list)
            else []
        )
        if children:
            deepest = max(deepest, depth)
            todo.extend((child, depth + 1) for child in children)
    return deepest
