"""dbt's JSON log (`--log-format json`) turned into the lines a person reads.

    OK stg_orders (2.5s, 1500 rows)          a model, seed or snapshot built
    ERROR stg_orders (0.1s): <dbt's message>  one that failed
    PASS not_null_orders_id (0.3s)            a test; FAIL (with its failures), WARN, ERROR
    FRESH raw.orders (0.1s)                   a source fresh; STALE when late, ERROR on failure
    Completed in 15.7s                        the end of the command

A line that is not dbt's JSON passes as it is. Events of no interest to a reader (parsing,
adapter registration) are left out of the log; the raw JSON of every line is kept beside it
(`<task>.dbt.jsonl`), for tools. `failed` names what failed, for the task's error.
"""

from __future__ import annotations

import json
import re
from typing import Any

_ROWS = re.compile(r"^(?:SELECT|INSERT \d+|UPDATE|DELETE|MERGE|COPY|CREATE TABLE \()\s*(\d+)\)?$")
_ESCAPES = re.compile(r"\x1b\[[0-9;]*m")
_TEST_WORDS = {"pass": "PASS", "fail": "FAIL", "warn": "WARN", "error": "ERROR"}
_FRESHNESS_WORDS = {"pass": "FRESH", "warn": "STALE", "error": "STALE"}
_BUILT = {"LogModelResult", "LogSeedResult", "LogSnapshotResult"}
_SAID = {"MainReportVersion", "FoundStats"}
"""Events shown as dbt words them: its version, and what it found to do."""


class DbtLog:
    """Feed it the task's output; it gives back the readable lines, and keeps the raw JSON."""

    def __init__(self) -> None:
        self._partial = b""
        self.raw: list[bytes] = []
        """The JSON lines read since the last `take_raw`."""
        self.failed: list[str] = []
        """What failed, as dbt names it (`model bad`, `test unique_orders_id`)."""
        self._errors: dict[str, str] = {}

    def feed(self, chunk: bytes) -> bytes:
        """The readable lines of the whole lines `chunk` completes."""
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        return b"".join(self._line(line) for line in lines)

    def flush(self) -> bytes:
        """What is left of a last line without its newline."""
        rest, self._partial = self._partial, b""
        return self._line(rest) if rest else b""

    def take_raw(self) -> bytes:
        taken = b"".join(line + b"\n" for line in self.raw)
        self.raw.clear()
        return taken

    def _line(self, line: bytes) -> bytes:
        event = _event(line)
        if event is None:
            return line + b"\n"
        self.raw.append(line)
        shown = self._show(*event)
        return f"{shown}\n".encode() if shown is not None else b""

    def _show(self, name: str, level: str, message: str, data: dict[str, Any]) -> str | None:
        node = data.get("node_info") or {}
        node_name = node.get("node_name") or data.get("node_name") or data.get("name") or "?"
        took = _seconds(data.get("execution_time"))
        status = str(data.get("status", "")).lower()
        if name in _BUILT:
            if status in ("error", "skipped"):
                return f"{status.upper()} {node_name}{took}"
            rows = _rows(data)
            details = ", ".join(filter(None, [took.strip(" ()"), rows]))
            return f"OK {node_name} ({details})" if details else f"OK {node_name}"
        if name == "LogTestResult":
            word = _TEST_WORDS.get(status, status.upper())
            failures = data.get("num_failures") or 0
            suffix = f" ({took.strip(' ()')}, {failures} failures)" if failures else took
            return f"{word} {node_name}{suffix}"
        if name == "LogFreshnessResult":
            table = f"{data.get('source_name')}.{data.get('table_name')}"
            word = "ERROR" if status == "runtime error" else _FRESHNESS_WORDS.get(status, "STALE")
            if status in ("error", "runtime error"):
                self.failed.append(f"source {table}")
            return f"{word} {table}{took}"
        if name == "RunResultFailure":
            what = f"{data.get('resource_type', 'node')} {node_name}"
            self.failed.append(what)
            return None
        if name == "RunResultError":
            text = str(data.get("msg") or message).strip()
            return "ERROR " + "\n      ".join(text.splitlines())
        if name == "FinishedRunningStats" and data.get("execution_time") is not None:
            return f"Completed in {float(data['execution_time']):.1f}s"
        if name in _SAID:
            return message.strip()
        if level in ("warn", "error"):
            return f"{'WARN' if level == 'warn' else 'ERROR'} {message.strip()}"
        return None


def _event(line: bytes) -> tuple[str, str, str, dict[str, Any]] | None:
    if not line.startswith(b"{"):
        return None
    try:
        parsed = json.loads(line)
        info = parsed["info"]
        name, level = str(info["name"]), str(info.get("level", "info"))
        message = _ESCAPES.sub("", str(info.get("msg", "")))
        data = parsed.get("data") or {}
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(data, dict):
        data = {}
    return name, level, message, data


def _seconds(value: object) -> str:
    try:
        return f" ({float(value):.1f}s)"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""


def _rows(data: dict[str, Any]) -> str:
    rows = data.get("rows_affected") or data.get("num_rows_affected")
    if not rows:
        found = _ROWS.match(str(data.get("status", "")).strip())
        rows = int(found.group(1)) if found else None
    return f"{rows} rows" if rows else ""
