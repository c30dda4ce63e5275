"""The executor process of `pit serve` (`python -m pit.cli.executor --channel FD`).

Started by pit serve only (see pit/actors/executor_process.py): it takes its runs over the
socket `FD`, logs to the stdout it inherits, and ends when pit serve's end of the socket closes.
"""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import socket
import sys
from types import FrameType

LOG_FORMAT = "%(asctime)s %(levelname)-5s %(message)s"
COMMAND = (sys.executable, "-m", "pit.cli.executor")
"""How pit serve starts an executor (the same Python, so the same pit)."""


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m pit.cli.executor")
    parser.add_argument("--channel", type=int, required=True, help="socket to pit serve (fd)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format=LOG_FORMAT)
    # pit serve decides when runs stop; a signal meant for the whole service (systemd signals
    # every process of the unit) must not cut the runs' grace period short. Python-level
    # handlers, not SIG_IGN: tasks must not inherit an ignored SIGTERM.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _ignore)

    import trio

    from pit.actors.executor import Executor
    from pit.actors.guard import RunGuard
    from pit.actors.orphans import adopt_orphans
    from pit.clock import SystemClock

    channel = socket.socket(fileno=args.channel)

    async def execute() -> None:
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(channel))
        await Executor(channel=stream, clock=SystemClock(), guard=guard).run()

    adopt_orphans()  # a task's processes that leave its group are re-parented here
    gc.freeze()  # the imported modules live as long as the process (see cli/foreground.py)
    with RunGuard.start() as guard:  # ends the runs' tasks if pit serve and this both die
        trio.run(execute)


def _ignore(signum: int, frame: FrameType | None) -> None:
    logging.getLogger("pit.serve").info(
        "executor: %s ignored: pit serve stops the runs", signal.Signals(signum).name
    )


if __name__ == "__main__":
    main()
