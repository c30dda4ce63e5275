"""Defaults that the specs and the messages built from them share.

Apart from `dag.py` and `workspace.py` so that reading a run record (`pit logs`) need not
import the spec parsers.
"""

from __future__ import annotations

ARTIFACTS = ("logs", "project", "data")
"""What a run keeps of itself by default (`keep_artifacts`)."""
DEFAULT_MAX_ACTIVE_TASKS = 4
DEFAULT_STOP_GRACE = 10.0
"""Seconds a stopped task gets between SIGTERM and SIGKILL."""
DEFAULT_DBT_DRIVER = "ODBC Driver 17 for SQL Server"
DEFAULT_FETCH_TIMEOUT = 300.0
DEFAULT_CATCHUP_WINDOW = 7 * 24 * 3600.0
"""How far back `catchup` looks for missed fires unless `catchup_window` says."""
"""Seconds a git-backed DAG's fetch may take (`fetch_timeout`)."""
