"""The API's OpenAPI document, checked against a live pit serve by schemathesis (its CLI):
every documented operation fuzzed, every answer held to the document (status, media type,
schema), no server error, schema-valid input accepted and invalid input refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Pit, Workspace
from tests.e2e.test_serve import serve, webhook_dag

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def test_the_live_api_keeps_to_its_openapi_document(workspace: Workspace, pit: Pit) -> None:
    webhook_dag(workspace, "hook", "echo hello\n", dag_keys='overlap = "allow"')
    with serve(pit, workspace) as server:
        checked = subprocess.run(
            [
                str(SCHEMATHESIS),
                "--config-file",
                str(Path(__file__).with_name("schemathesis.toml")),
                "run",
                f"http://127.0.0.1:{server.port}/api/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                "10",
                # The log streams follow live runs: a fuzzer's request could wait for ever.
                "--exclude-path-regex",
                "logs$",
            ],
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert checked.returncode == 0, checked.stdout[-6000:] + checked.stderr[-2000:]
        assert "passed" in checked.stdout
