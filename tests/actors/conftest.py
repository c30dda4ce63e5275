"""Fixtures of the actor tests."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from .processbench import Bench, started_by_a_test_script, survivors


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    space = Bench(tmp=tmp_path, pid_file=tmp_path / "pids")
    space.project.mkdir()
    yield space
    # Never leave a `sleep 300` behind, even when a test failed.
    for pid in survivors(space.pids()):
        if started_by_a_test_script(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
