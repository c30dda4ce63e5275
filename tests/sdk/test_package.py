"""pit_sdk as a package: importable with the standard library alone (in any task's Python),
independent of pit, installable on its own, with the original client's signatures."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

import pit_sdk

from .conftest import SDK_DIR
from .fakebroker import FakeBroker, ok

PACKAGE_DIR = SDK_DIR / "pit_sdk"
OPTIONAL = ("pyarrow", "connectorx", "pandas", "polars")


def plain_python() -> str:
    """An interpreter (3.11+) without pyarrow: the venv's base Python, or the system one."""
    candidates = [getattr(sys, "_base_executable", ""), "/usr/bin/python3"]
    probe = "import importlib.util, sys; sys.exit(sys.version_info < (3, 11) or "
    probe += "importlib.util.find_spec('pyarrow') is not None)"
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            found = subprocess.run([candidate, "-I", "-c", probe], check=False, timeout=60)
            if found.returncode == 0:
                return candidate
    pytest.skip("no Python 3.11+ without pyarrow on this machine to import pit_sdk with")


def test_import_needs_only_the_standard_library(broker: FakeBroker, tmp_path: Path) -> None:
    broker.reply(ok("from a plain python"))
    # -I ignores PYTHONPATH (and user site-packages), so the script puts sdk/python on sys.path.
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(SDK_DIR)!r})
        import pit_sdk
        assert callable(pit_sdk.get_secret)
        loaded = sorted(set({OPTIONAL!r}) & set(sys.modules))
        assert not loaded, loaded
        print(pit_sdk.get_secret("k"))
        try:
            pit_sdk.write_output("claims", None)
        except ModuleNotFoundError as exc:
            print(exc)
        """
    )

    done = subprocess.run(
        [plain_python(), "-I", "-c", script],
        env={"PIT_SOCKET": broker.address, "PIT_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    answer, missing = done.stdout.splitlines()
    assert answer == "from a plain python"
    assert "write_output() needs pyarrow" in missing
    assert "pit-sdk[arrow]" in missing
    assert broker.only_request() == {"method": "get_secret", "params": {"key": "k"}}


def module_imports(path: Path) -> tuple[set[str], set[str]]:
    """(modules imported at a module's top level, modules imported anywhere in it)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))

    def names(nodes: list[ast.stmt] | list[ast.AST]) -> set[str]:
        found = set()
        for node in nodes:
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module)
        return found

    return names(tree.body), names(list(ast.walk(tree)))


@pytest.mark.parametrize("module", sorted(PACKAGE_DIR.glob("*.py")), ids=lambda p: p.name)
def test_modules_import_the_standard_library_at_top_level_and_never_pit(module: Path) -> None:
    top_level, anywhere = module_imports(module)

    roots = {name.partition(".")[0] for name in top_level}
    assert roots <= set(sys.stdlib_module_names) | {"__future__", "pit_sdk"}
    assert not {name for name in anywhere if name == "pit" or name.startswith("pit.")}


def test_the_package_stands_alone() -> None:
    project = tomllib.loads((SDK_DIR / "pyproject.toml").read_text(encoding="utf-8"))

    assert project["project"]["name"] == "pit-sdk"
    assert project["project"]["requires-python"] == ">=3.11"
    assert project["project"]["dependencies"] == []
    extras = {
        extra: {requirement.partition(">")[0] for requirement in requirements}
        for extra, requirements in project["project"]["optional-dependencies"].items()
    }
    assert extras["arrow"] == {"pyarrow"}
    assert extras["sql"] == {"connectorx", "pyarrow"}
    assert {"pandas", "polars"} <= extras.keys()
    assert project["build-system"]["build-backend"] == "hatchling.build"


SIGNATURES = {
    "get_secret": "(key: 'str') -> 'str'",
    "get_secret_field": "(secret: 'str', field: 'str') -> 'str'",
    "load_data": (
        "(file: 'str', table: 'str', connection: 'str', schema: 'str' = 'dbo', "
        "mode: 'str' = 'append') -> 'str'"
    ),
    "read_sql": (
        "(conn: 'str', query: 'str', return_type: 'str' = 'arrow') "
        "-> 'pa.Table | pd.DataFrame | pl.DataFrame'"
    ),
    "output_sql": (
        "(conn: 'str', query: 'str', name: 'str', *, batch_size: 'int' = 100000) -> 'str'"
    ),
    "write_output": "(name: 'str', data: 'Any') -> 'str'",
    "read_input": "(name: 'str') -> 'pa.Table'",
    "ftp_list": "(secret: 'str', directory: 'str', pattern: 'str' = '*') -> 'list[str]'",
    "ftp_download": "(secret: 'str', path: 'str', *, pattern: 'str | None' = None) -> 'list[str]'",
    "ftp_upload": "(secret: 'str', local_name: 'str', remote_path: 'str') -> 'None'",
    "ftp_move": "(secret: 'str', src: 'str', dst: 'str') -> 'None'",
}
PIT_ONLY = {  # pit's own additions beside the original client's functions
    "get_param": "(name: 'str', default: 'Any' = <no default>) -> 'Any'",
    "get_params": "() -> 'dict[str, Any]'",
    "send_email": (
        "(secret: 'str', to: 'str | Sequence[str]', subject: 'str', body: 'str', "
        "attachments: 'Sequence[str]' = ()) -> 'None'"
    ),
    "http_request": (
        "(secret: 'str', method: 'str', path: 'str', *, json: 'Any' = None) -> 'HttpResponse'"
    ),
    "HttpResponse": "(status: ForwardRef('int'), text: ForwardRef('str'))",
}


@pytest.mark.parametrize("name", sorted(SIGNATURES | PIT_ONLY))
def test_the_original_clients_functions_and_parameters(name: str) -> None:
    assert name in pit_sdk.__all__
    assert str(inspect.signature(getattr(pit_sdk, name))) == (SIGNATURES | PIT_ONLY)[name]


def test_exports() -> None:
    assert sorted(pit_sdk.__all__) == sorted(SIGNATURES | PIT_ONLY)
