"""`pit outputs`: the registry of every project's [[outputs]], with filters and JSON."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e

SALES_OUTPUTS = """
[[outputs]]
name = "orders"
type = "table"
location = "warehouse.sales.orders"
recipients = ["finance@example.com", "ops@example.com"]

[[outputs]]
name = "daily_report"
type = "file"
location = "data/report.txt"
"""

HR_OUTPUTS = """
[[outputs]]
name = "staff"
type = "table"
location = "warehouse.hr.staff"

[[outputs]]
name = "export"
type = "table"
location = "lake.hr.export"
"""


@pytest.fixture(scope="module")
def registry(tmp_path_factory, make_workspace):
    """`pit` for a workspace of two projects declaring outputs (tests only read it)."""
    workspace, pit = make_workspace(tmp_path_factory.mktemp("registry"))
    workspace.shell_project("sales", {"a": "echo a\n"}, extra=SALES_OUTPUTS)
    workspace.shell_project("hr", {"a": "echo a\n"}, extra=HR_OUTPUTS)
    return pit


def test_lists_every_output_as_a_table(registry):
    result = registry("outputs")

    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["dag", "name", "type", "location"]
    assert sorted(row.split() for row in rows) == [
        ["hr", "export", "table", "lake.hr.export"],
        ["hr", "staff", "table", "warehouse.hr.staff"],
        ["sales", "daily_report", "file", "data/report.txt"],
        ["sales", "orders", "table", "warehouse.sales.orders"],
    ]


@pytest.mark.parametrize(
    ("filters", "names"),
    [
        ((), {"orders", "daily_report", "staff", "export"}),
        (("--project", "sales"), {"orders", "daily_report"}),
        (("--type", "table"), {"orders", "staff", "export"}),
        (("--location", "warehouse.*"), {"orders", "staff"}),
        (("--location", "*.hr.*", "--type", "table"), {"staff", "export"}),
        (("--project", "hr", "--location", "warehouse.*"), {"staff"}),
        (("--project", "nobody"), set()),
    ],
)
def test_filters(registry, filters, names):
    result = registry("outputs", *filters, "--json")

    assert result.returncode == 0, result.stderr
    assert {row["name"] for row in json.loads(result.stdout)} == names


def test_json_keeps_extra_fields(registry):
    result = registry("outputs", "--project", "sales", "--type", "table", "--json")

    assert json.loads(result.stdout) == [
        {
            "dag": "sales",
            "name": "orders",
            "type": "table",
            "location": "warehouse.sales.orders",
            "recipients": ["finance@example.com", "ops@example.com"],
        }
    ]


def test_no_match_says_so(registry):
    result = registry("outputs", "--type", "dashboard")

    assert result.returncode == 0
    assert result.stdout.strip() == "no outputs match"
