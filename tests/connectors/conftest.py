"""Databases to test the connectors against: SQLite and DuckDB files in the test's tmp_path, and
PostgreSQL in a fresh database of the session's throwaway cluster (skipped, or failed in CI,
without PostgreSQL; see tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pit.connectors.target import Target, parse_target

from .databases import ALL, LOCAL, make_target


@pytest.fixture(params=ALL)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """Each database in turn."""
    return make_target(request.param, request, tmp_path)


@pytest.fixture(params=LOCAL)
def local_target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """SQLite, then DuckDB."""
    return make_target(request.param, request, tmp_path)


@pytest.fixture
def postgres_target(fresh_postgres_url: str, tmp_path: Path) -> Target:
    return parse_target(fresh_postgres_url, tmp_path)
