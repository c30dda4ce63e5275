"""The files `pit init` writes for each project type. `{name}` is the DAG name, `{package}` the
Python package name derived from it."""

from __future__ import annotations

PYTHON = {
    "pit.toml": """\
[dag]
name = "{name}"
# schedule = "0 6 * * *"   # uncomment to run daily at 06:00 under `pit serve`
overlap = "skip"
timeout = "30m"

[[tasks]]
name = "extract"
script = "tasks/extract.py"
retries = 2
retry_delay = "10s"

[[tasks]]
name = "transform"
script = "tasks/transform.py"
depends_on = ["extract"]

[[outputs]]
name = "{name}_summary"
type = "file"
location = "data/summary.txt"
""",
    "pyproject.toml": """\
[project]
name = "{name}"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = []

[tool.uv]
# Tasks run with `uv run --project`; pit puts src/ on PYTHONPATH, so nothing needs building.
package = false
""",
    "src/{package}/__init__.py": '''\
"""Code shared by the tasks of {name}."""


def greet(who: str) -> str:
    return f"hello, {{who}}"
''',
    "tasks/extract.py": '''\
"""Extract: write a small file into the run's data directory."""

import os
from pathlib import Path

from {package} import greet

data = Path(os.environ["PIT_DATA_DIR"])
(data / "raw.txt").write_text("\\n".join(greet(n) for n in ("ada", "grace", "linus")) + "\\n")
print(f"extracted 3 rows (attempt {{os.environ['PIT_ATTEMPT']}})")
''',
    "tasks/transform.py": '''\
"""Transform: read what extract wrote, summarise it."""

import os
from pathlib import Path

data = Path(os.environ["PIT_DATA_DIR"])
rows = (data / "raw.txt").read_text().splitlines()
(data / "summary.txt").write_text(f"{{len(rows)}} rows\\n")
print(f"summarised {{len(rows)}} rows")
''',
}

SQL = {
    "pit.toml": """\
[dag]
name = "{name}"
# schedule = "0 7 * * *"

[dag.sql]
connection = "{name}_db"   # a secret in your secrets file; without --secrets SQL runs in stub mode

[[tasks]]
name = "staging"
script = "tasks/staging.sql"

[[tasks]]
name = "summary"
script = "tasks/summary.sql"
depends_on = ["staging"]

[[outputs]]
name = "{name}_summary"
type = "table"
location = "warehouse.{name}.summary"
""",
    "tasks/staging.sql": """\
CREATE TABLE IF NOT EXISTS staging_orders AS
SELECT 1 AS order_id, 'ada' AS customer, 42.0 AS amount;
""",
    "tasks/summary.sql": """\
CREATE TABLE IF NOT EXISTS summary AS
SELECT customer, SUM(amount) AS total FROM staging_orders GROUP BY customer;
""",
}

SHELL = {
    "pit.toml": """\
[dag]
name = "{name}"
# schedule = "0 2 * * *"

[[tasks]]
name = "prepare"
script = "tasks/prepare.sh"

[[tasks]]
name = "report"
script = "tasks/report.sh"
depends_on = ["prepare"]
timeout = "5m"
""",
    "tasks/prepare.sh": """\
#!/usr/bin/env bash
set -euo pipefail
echo "preparing in $PIT_DATA_DIR (run $PIT_RUN_ID)"
date -u +%FT%TZ > "$PIT_DATA_DIR/prepared_at"
""",
    "tasks/report.sh": """\
#!/usr/bin/env bash
set -euo pipefail
echo "prepared at $(cat "$PIT_DATA_DIR/prepared_at")"
""",
}

DBT = {
    "pit.toml": """\
[dag]
name = "{name}"
# schedule = "0 7 * * *"
timeout = "2h"

[dag.dbt]
version = "1.11.16"
adapter = "dbt-duckdb"
project_dir = "dbt_repo"
connection = "{name}_db"   # structured secret with the database's connection fields

[[tasks]]
name = "run"
script = "run"
runner = "dbt"

[[tasks]]
name = "test"
script = "test"
runner = "dbt"
depends_on = ["run"]
""",
    "dbt_repo/dbt_project.yml": """\
name: {package}
version: "1.0.0"
profile: {name}
model-paths: ["models"]
""",
    "dbt_repo/models/example.sql": """\
select 1 as id, 'open' as status
union all
select 2, 'closed'
""",
    "dbt_repo/models/schema.yml": """\
version: 2
models:
  - name: example
    columns:
      - name: id
        data_tests: [not_null, unique]
""",
}

DBT_SECRET = """\
# The connection of the dbt project '{name}': an embedded DuckDB database in the workspace.
# Give this file with `pit --secrets {file} ...`, or move the section into the secrets file
# pit_config.toml names (secrets_dir). For PostgreSQL: host, user, password, dbname (and the
# adapter dbt-postgres in projects/{name}/pit.toml).
[{name}.{name}_db]
path = "{name}.duckdb"
"""

SCAFFOLDS = {"python": PYTHON, "sql": SQL, "shell": SHELL, "dbt": DBT}
EXECUTABLE_SUFFIXES = (".sh",)
