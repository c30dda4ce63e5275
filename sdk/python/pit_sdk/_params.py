"""The run's params (`[dag.params]` in pit.toml), typed as the DAG declares them.

pit gives every task `PIT_PARAMS`, a JSON object of each param's type and value, beside one
`PIT_PARAM_<NAME>` text variable per param. `get_param` reads the JSON: an int is an int, a
date a `datetime.date`, a datetime an aware `datetime.datetime`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

PARAMS_ENV = "PIT_PARAMS"


class _NoDefault:
    def __repr__(self) -> str:
        return "<no default>"


_MISSING: Any = _NoDefault()


def get_params() -> dict[str, Any]:
    """Every param of the run, typed; empty when the DAG takes none."""
    text = os.environ.get(PARAMS_ENV)
    if not text:
        return {}
    try:
        typed = json.loads(text)
    except ValueError as exc:
        raise RuntimeError(f"{PARAMS_ENV} is not the JSON pit writes: {exc}") from None
    return {name: _typed(name, entry) for name, entry in typed.items()}


def get_param(name: str, default: Any = _MISSING) -> Any:
    """The run's param `name`, typed; `default` (if given) when the run has no such param,
    else a KeyError naming the params it has."""
    params = get_params()
    if name in params:
        return params[name]
    if default is not _MISSING:
        return default
    have = ", ".join(sorted(params)) or "none"
    raise KeyError(f"the run has no param '{name}' (its params: {have})")


def _typed(name: str, entry: Any) -> Any:
    if not isinstance(entry, dict) or "type" not in entry or "value" not in entry:
        raise RuntimeError(f"{PARAMS_ENV}: param '{name}' is not a type and a value")
    kind, value = entry["type"], entry["value"]
    if kind == "date":
        return dt.date.fromisoformat(value)
    if kind == "datetime":
        return dt.datetime.fromisoformat(value)
    return value
