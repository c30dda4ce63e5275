"""The import layers of STYLE.md, kept by an AST walk over every module of pit/.

`errors`/`clock` <- `spec` <- `messages` <- `store`, `connectors`, `runners` <- `actors` (with
`remote`, the actors' side on a Dask cluster, and `dask`, its worker preload) <- `web` <- `cli`:
a module imports pit modules of its own layer or a lower one, never a higher one; the three
packages of layer 3 do not import each other; and `pit.spec` (sans-io) does not import trio.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import pit

PIT_DIR = Path(pit.__file__).parent

RANKS = {
    "errors": 0,
    "clock": 0,
    "spec": 1,
    "messages": 2,
    "store": 3,
    "connectors": 3,
    "runners": 3,
    "actors": 4,
    "remote": 4,
    "dask": 4,
    "web": 5,
    "cli": 6,
}
"""The layer of each top-level part of pit: a module may import its own layer or lower ones."""

SIBLINGS_APART = {"store", "connectors", "runners"}
"""Layer-3 packages that must not import each other (each is a leaf the actors compose)."""

ONLY_FROM = {"web": {"web", "messages", "spec", "store", "errors", "clock"}}
"""Parts of pit that may import only these (the web sees the supervisor through a handle in
`pit.messages`, never the actors; it reads the runs from the store and the run folders)."""

UNTYPED_WIRING = ("pit.actors.supervisor", "pit.cli.serve")
"""Where the web listener is wired in: typed, no `Any` to slip a whole actor through."""

SANS_IO = {"spec": ("trio",)}
"""Top-level parts that must not import these third-party packages."""


def module_name(path: Path, pit_dir: Path = PIT_DIR) -> str:
    """`pit/spec/dag.py` -> `pit.spec.dag`; `pit/spec/__init__.py` -> `pit.spec`."""
    parts = list(path.relative_to(pit_dir.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, *, is_package: bool = False) -> Iterator[str]:
    """Every module `source` imports (anywhere: top level, functions, TYPE_CHECKING blocks),
    relative imports resolved against `module`. For `from x import y`, yields `x.y` too, since
    `y` may be a submodule (`from pit import cli`)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target
            yield from (f"{target}.{alias.name}" for alias in node.names if alias.name != "*")


def layer_of(module: str) -> str | None:
    """The top-level part of pit a module belongs to (`pit.spec.dag` -> `spec`), or None for
    modules outside pit and for the `pit` package itself."""
    parts = module.split(".")
    if parts[0] != "pit" or len(parts) < 2:
        return None
    return parts[1]


def layer_violations(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """What is wrong with the imports of `module` (whose text is `source`); [] when nothing."""
    own = layer_of(module)
    if own is None:
        return []
    if own not in RANKS:
        return [f"{module}: 'pit.{own}' is in no layer of STYLE.md; add it to RANKS or move it"]
    problems = []
    for target in imported_modules(source, module, is_package=is_package):
        forbidden = SANS_IO.get(own, ())
        if target.split(".")[0] in forbidden:
            problems.append(f"{module} imports {target}: pit.{own} must not use it")
        other = layer_of(target)
        if other is None or other == own or other not in RANKS:
            # Unknown parts of pit are reported for their own modules; `from pit.x import y`
            # also yields `pit.x.y`, so a name that is no module is harmless here.
            continue
        if own in ONLY_FROM and other not in ONLY_FROM[own]:
            problems.append(
                f"{module} imports {target}: pit.{own} may import only "
                f"{', '.join(sorted(ONLY_FROM[own] - {own}))}"
            )
        elif RANKS[other] > RANKS[own]:
            problems.append(
                f"{module} imports {target}: layer {own} ({RANKS[own]}) may not import "
                f"the higher layer {other} ({RANKS[other]})"
            )
        elif own in SIBLINGS_APART and other in SIBLINGS_APART:
            problems.append(f"{module} imports {target}: {own} and {other} must stay apart")
    return sorted(set(problems))


def pit_modules() -> list[Path]:
    return sorted(PIT_DIR.rglob("*.py"))


def test_pit_has_modules_in_every_core_layer() -> None:
    """The walk below looks at the real package (a wrong path would make it pass vacuously)."""
    layers = {layer_of(module_name(path)) for path in pit_modules()}
    assert {"errors", "clock", "spec", "messages", "store", "runners", "actors", "cli"} <= layers


@pytest.mark.parametrize("path", pit_modules(), ids=module_name)
def test_module_imports_only_its_own_or_lower_layers(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    problems = layer_violations(source, module_name(path), is_package=path.name == "__init__.py")
    assert problems == []


@pytest.mark.parametrize("module", UNTYPED_WIRING)
def test_the_web_wiring_is_typed(module: str) -> None:
    path = PIT_DIR.parent / (module.replace(".", "/") + ".py")
    imported = set(imported_modules(path.read_text(encoding="utf-8"), module))
    assert "typing.Any" not in imported


# --- the checker itself catches violations ----------------------------------------------------


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("pit.spec.dag", "from pit.actors.run import RunActor"),
        ("pit.spec.dag", "import pit.cli.app"),
        ("pit.spec.dag", "from pit import messages"),
        ("pit.messages.run", "from pit.store.rundir import RunPaths"),
        ("pit.runners.command", "from ..actors import task"),
        ("pit.actors.run", "from pit.web.app import create_app"),
        ("pit.web.app", "from pit.cli import app"),
        ("pit.web.app", "from pit.actors.run import RunActor"),
        ("pit.web.app", "from pit.actors.supervisor import Supervisor"),
        ("pit.errors", "from pit.spec.problems import Problem"),
        ("pit.clock", "from .spec import cron"),
        ("pit.store.rundir", "from pit.runners.command import Outcome"),
        ("pit.runners.command", "from pit.connectors import sql"),
        ("pit.connectors.ftp", "from ..store import rundir"),
        (
            "pit.spec.dag",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pit.actors import run",
        ),
        ("pit.spec.dag", "def later():\n    from pit.cli.live import LiveView"),
        ("pit.spec.cron", "import trio"),
        ("pit.spec.cron", "from trio import sleep"),
        ("pit.gadgets", "import pit.errors"),
    ],
)
def test_checker_reports_a_violation(module: str, source: str) -> None:
    assert layer_violations(source, module) != []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("pit.spec.dag", "from pit.errors import PitError\nfrom pit.spec.problems import Problem"),
        ("pit.spec.dag", "from .problems import Problem\nfrom . import reader"),
        ("pit.messages.run", "from pit.spec.states import RunState"),
        ("pit.store.rundir", "from pit.messages.run import RunRecord"),
        ("pit.actors.run", "import trio\nfrom pit.runners.command import Launch"),
        ("pit.cli.run", "from pit.actors.execute import execute_run\nfrom pit import errors"),
        ("pit.errors", "from pit.clock import SystemClock"),
        ("pit.cli.view", "import attrs\nimport rich"),
    ],
)
def test_checker_accepts_imports_down_the_layers(module: str, source: str) -> None:
    assert layer_violations(source, module) == []


def test_relative_imports_resolve_from_the_module_package() -> None:
    source = "from . import dag\nfrom ..errors import PitError\nfrom .. import clock"
    assert set(imported_modules(source, "pit.spec.load")) == {
        "pit.spec",
        "pit.spec.dag",
        "pit.errors",
        "pit.errors.PitError",
        "pit",
        "pit.clock",
    }
    # In a package's __init__, `.` is the package itself.
    assert "pit.spec.dag" in set(
        imported_modules("from .dag import x", "pit.spec", is_package=True)
    )
