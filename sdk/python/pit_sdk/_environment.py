"""What a pit task is given: its environment variables, and the names of files in its data dir.

Every name a task passes to `write_output`, `read_input`, `output_sql` or `load_data` is a file
stem in the run's data directory (`$PIT_DATA_DIR/<name>.parquet`); a trailing `.parquet` is
accepted and dropped, so `"claims"` and `"claims.parquet"` name the same file. A name cannot
reach outside the data directory: no path separators, no `.`/`..`, no absolute paths.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

SOCKET_ENV = "PIT_SOCKET"
DATA_DIR_ENV = "PIT_DATA_DIR"
TASK_ENV = "PIT_TASK_NAME"
WORKSPACE_ENV = "PIT_WORKSPACE"
PARQUET_SUFFIX = ".parquet"


def require_env(variable: str, function: str) -> str:
    """The value of `variable`, or a RuntimeError saying `function` must run inside a pit task."""
    value = os.environ.get(variable)
    if not value:
        raise RuntimeError(
            f"{variable} is not set: {function}() must run inside a pit task "
            f"(pit sets {variable} for every task it starts)"
        )
    return value


def task_name() -> str | None:
    """The running task's name (PIT_TASK_NAME), if pit gave one."""
    return os.environ.get(TASK_ENV) or None


def workspace() -> Path:
    """The workspace root (PIT_WORKSPACE); outside pit, the current directory."""
    return Path(os.environ.get(WORKSPACE_ENV) or os.getcwd())


def require_text(value: object, param: str, function: str) -> str:
    """`value` if it is a non-empty str; TypeError or ValueError naming `param` otherwise, so a
    mistake is reported before anything is asked of the broker."""
    if not isinstance(value, str):
        raise TypeError(f"{function}(): {param} is a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{function}(): {param} is empty")
    return value


def parquet_file_name(name: str, function: str) -> str:
    """`claims` or `claims.parquet` -> `claims.parquet`; ValueError for a name that would leave
    the data directory or is empty."""
    if not isinstance(name, str):
        raise TypeError(f"{function}(): a data file name is a str, not {type(name).__name__}")
    stem = name.removesuffix(PARQUET_SUFFIX)
    separators = {"/", "\\", os.sep, os.altsep or "/"}
    problem = None
    if not stem:
        problem = "it is empty"
    elif any(sep in name for sep in separators) or os.path.splitdrive(name)[0]:
        problem = "it is a path, not a file name"
    elif stem in (".", ".."):
        problem = f"{stem!r} is a directory, not a file"
    elif "\0" in name:
        problem = "it contains a NUL character"
    if problem:
        raise ValueError(
            f"{function}(): bad data file name {name!r}: {problem}. Give a plain file name such "
            f"as 'claims' (or 'claims.parquet'); it is always a file directly in ${DATA_DIR_ENV}"
        )
    return stem + PARQUET_SUFFIX


def data_dir(function: str) -> Path:
    """The run's data directory, from PIT_DATA_DIR."""
    return Path(require_env(DATA_DIR_ENV, function))


def parquet_path(name: str, function: str) -> Path:
    """Where the data file `name` lives: `$PIT_DATA_DIR/<name>.parquet`."""
    file_name = parquet_file_name(name, function)
    return data_dir(function) / file_name


def import_optional(module: str, function: str, extra: str) -> ModuleType:
    """Import a library the task's Python may lack, or say which extra brings it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        package = module.partition(".")[0]
        raise ModuleNotFoundError(
            f"{function}() needs {package}, which this task's Python does not have: add it to "
            f"the task's environment (for example `pip install 'pit-sdk[{extra}]'`)",
            name=package,
        ) from exc
