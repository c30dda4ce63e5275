"""`pit`: the console script's entry point.

The commands that run most are read by `cli/argv.py` and called at once; everything else goes
to typer (`cli/app.py`), imported only then. A `PitError` (a user's mistake: a bad workspace,
an unknown DAG) is one line on stderr and exit code 2, on both paths.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from pit.cli.argv import parse
from pit.errors import PitError


def main() -> None:
    sys.exit(run_pit(sys.argv[1:]))


def run_pit(args: Sequence[str]) -> int:
    """The exit code of `pit <args>`."""
    try:
        invocation = parse(args, os.environ)
        if invocation is None:
            return _with_typer(args)
        try:
            return invocation.run()
        except KeyboardInterrupt:  # as typer ends a command interrupted by Ctrl-C
            print("\nAborted!", file=sys.stderr)
            return 1
        except BrokenPipeError:  # `pit logs dag | head`: the reader has gone, so be quiet
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
    except PitError as exc:
        print(f"pit: {exc}", file=sys.stderr)
        return 2


def _with_typer(args: Sequence[str]) -> int:
    from pit.cli.app import app

    app(args=list(args), prog_name="pit")  # it ends with SystemExit, as click's commands do
    return 0
