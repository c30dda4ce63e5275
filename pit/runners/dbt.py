"""dbt tasks: the profiles.yml pit writes for a run from `[dag.dbt].connection`, and dbt's env.

The profile is made from the structured secret the connection names, its fields mapped to the
adapter's keys for the adapters pit knows (dbt-postgres, dbt-duckdb, dbt-sqlserver with
`dbt_driver` as its ODBC driver); an adapter pit does not know gets the secret's fields as they
are, with `type` from the adapter's name. A field an adapter needs and the secret lacks is an
error naming both, before dbt starts. The file is written as JSON, which YAML reads as it is, in
a private folder (0700) that lives as long as the run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from pit.errors import RunError
from pit.spec.dag import DagSpec
from pit.spec.secrets import SecretNotFound, Secrets
from pit.spec.tables import DbtSpec

PROFILES = "profiles.yml"
_INTEGERS = {"port", "threads", "connect_timeout", "keepalives_idle", "retries", "login_timeout"}


@attrs.frozen
class Adapter:
    type: str
    required: tuple[tuple[str, ...], ...]
    """Each profile key the adapter needs, with the secret fields that may give it (first
    found wins): ("dbname", "database") reads `dbname`, else `database`."""
    defaults: Mapping[str, Any] = attrs.field(factory=dict)


ADAPTERS = {
    "dbt-postgres": Adapter(
        type="postgres",
        required=(("host",), ("user",), ("password",), ("dbname", "database")),
        defaults={"port": 5432, "schema": "public", "threads": 4},
    ),
    "dbt-duckdb": Adapter(type="duckdb", required=(("path", "database"),), defaults={"threads": 1}),
    "dbt-sqlserver": Adapter(
        type="sqlserver",
        required=(("server", "host"), ("database",), ("user",), ("password",)),
        defaults={"port": 1433, "schema": "dbo", "threads": 4, "authentication": "sql"},
    ),
}


def profile(
    dag: DagSpec, secrets: Secrets | None, *, workspace: Path, odbc_driver: str
) -> dict[str, Any]:
    """The whole profiles.yml for `dag`'s dbt tasks; RunError saying what is missing."""
    dbt = dag.dbt
    assert dbt is not None
    name = dbt.connection
    if name is None:
        raise RunError(
            "[dag.dbt] sets no connection: name the structured secret holding the database's "
            'fields (connection = "...")'
        )
    if secrets is None:
        raise RunError(f"dbt needs the secret '{name}', and pit has no secrets file (--secrets)")
    try:
        secret = secrets.find(dag.name, name)
    except SecretNotFound as exc:
        raise RunError(f"dbt needs {exc}") from None
    if isinstance(secret, str):
        raise RunError(
            f"secret '{name}' is a plain value; dbt needs a table of the database's fields "
            f'({name} = {{ host = "...", ... }})'
        )
    output = _output(dbt.adapter, name, dict(secret), workspace, odbc_driver)
    return {dbt.profile or dag.name: {"target": dbt.target, "outputs": {dbt.target: output}}}


def _output(
    adapter_name: str, secret_name: str, fields: dict[str, Any], workspace: Path, driver: str
) -> dict[str, Any]:
    base = re.split(r"[=<>!~\[ ]", adapter_name, maxsplit=1)[0]
    adapter = ADAPTERS.get(base)
    if adapter is None:  # pit does not know it: the fields as written
        return {"type": base.removeprefix("dbt-"), **fields}
    output: dict[str, Any] = {"type": adapter.type, **adapter.defaults}
    used: set[str] = set()
    for keys in adapter.required:
        found = next((key for key in keys if key in fields), None)
        if found is None:
            raise RunError(
                f"secret '{secret_name}' has no field '{keys[0]}' that {adapter_name} needs"
                + (f" (or '{keys[1]}')" if len(keys) > 1 else "")
            )
        output[keys[0]] = fields[found]
        used.add(found)
    for key, value in fields.items():  # the rest as written (sslmode, encrypt, extensions...)
        if key not in used:
            output[key] = value
    for key, value in output.items():  # secrets hold text; dbt checks these keys' types
        if isinstance(value, str) and key in _INTEGERS and value.strip().isdigit():
            output[key] = int(value)
        elif isinstance(value, str) and value.lower() in ("true", "false"):
            output[key] = value.lower() == "true"
    if adapter.type == "duckdb":
        path = Path(os.path.expanduser(str(output.pop("path"))))
        output["path"] = str(path if path.is_absolute() else workspace / path)
    if adapter.type == "sqlserver":
        output.setdefault("driver", driver)
    return output


def dbt_command(dbt: DbtSpec) -> tuple[str, ...]:
    """dbt as uv runs it for `[dag.dbt]`: the pinned dbt-core with the adapter and extras."""
    deps = [arg for dep in (dbt.adapter, *dbt.extra_deps) for arg in ("--with", dep)]
    return ("uvx", "--from", f"dbt-core=={dbt.version}", *deps, "dbt")


@contextmanager
def profiles_folder(profiles: dict[str, Any]) -> Iterator[Path]:
    """A private folder (0700) holding `profiles.yml`, removed on leaving."""
    folder = Path(tempfile.mkdtemp(prefix="pit-dbt-"))
    try:
        path = folder / PROFILES
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(profiles, file, indent=2)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def dbt_env(profiles_dir: Path | None) -> dict[str, str]:
    """What every dbt task is told: where its profile is, and to call no server of dbt's."""
    env = {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DBT_VERSION_CHECK": "false"}
    if profiles_dir is not None:
        env["DBT_PROFILES_DIR"] = str(profiles_dir)
    return env


DBT_JSONL = ".dbt.jsonl"
"""The suffix of a dbt task's raw JSON log, beside its readable one (`<task>.dbt.jsonl`)."""
ARTIFACTS = ("run_results.json", "manifest.json")
"""What dbt writes in its target/ that lineage tools read: kept with each dbt task's log."""


def keep_artifacts(project_dir: Path, log_path: Path) -> None:
    """Copy dbt's run_results.json and manifest.json beside the task's log
    (`<task>.run_results.json`): the next dbt task of the run overwrites them in target/."""
    for name in ARTIFACTS:
        made = project_dir / "target" / name
        if made.is_file():
            try:
                shutil.copyfile(made, log_path.with_name(f"{log_path.stem}.{name}"))
            except OSError:  # a full disk: the run's log says what matters
                continue
