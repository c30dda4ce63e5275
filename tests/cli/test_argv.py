"""`cli/argv.py` reads the hot commands without typer: it must read them exactly as typer does.

Two checks: the table names the same options, flags and arguments as typer's declarations
(`cli/app.py`), and on generated command lines, whenever the fast reader answers, typer calls
the same implementation with the same context and values. The implementations are replaced by
recorders here: what is compared is the call, not the command's work.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st

import pit.cli.logs
import pit.cli.outputs
import pit.cli.run
import pit.cli.status
import pit.cli.validate
from pit.cli.app import app
from pit.cli.argv import COMMANDS, GLOBAL_OPTIONS, PROJECT_DIR_VARIABLE, Option, parse
from pit.cli.context import CliContext

IMPLEMENTATIONS = {
    "run": (pit.cli.run, "run_command"),
    "validate": (pit.cli.validate, "validate_command"),
    "logs": (pit.cli.logs, "logs_command"),
    "outputs": (pit.cli.outputs, "outputs_command"),
    "status": (pit.cli.status, "status_command"),
}

GROUP = typer.main.get_command(app)


def _declared(command: Any) -> tuple[dict[str, tuple[str, bool]], list[str]]:
    """Option string -> (dest, is a flag), and the argument names, as typer declares them."""
    options, arguments = {}, []
    for param in command.params:
        if param.param_type_name == "argument":
            arguments.append(param.name)
            continue
        if param.name == "help":
            continue
        for flag in [*param.opts, *param.secondary_opts]:
            options[flag] = (param.name, param.is_flag)
    return options, arguments


def _table(options: dict[str, Option]) -> dict[str, tuple[str, bool]]:
    return {flag: (option.dest, option.convert is None) for flag, option in options.items()}


def test_the_global_options_are_typers() -> None:
    options, arguments = _declared(GROUP)
    assert _table(GLOBAL_OPTIONS) == options
    assert arguments == []
    (project_dir,) = [p for p in GROUP.params if p.name == "project_dir"]
    assert project_dir.envvar == PROJECT_DIR_VARIABLE


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_fast_command_has_typers_options_and_arguments(name: str) -> None:
    options, arguments = _declared(GROUP.commands[name])  # type: ignore[attr-defined]
    assert _table(dict(COMMANDS[name].options)) == options
    assert list(COMMANDS[name].arguments) == arguments


# --- the same calls on generated command lines --------------------------------------------------


class Recorded(Exception):
    """Raised by a recorder, so that neither path goes on to the command's work."""

    def __init__(self, name: str, cli: CliContext, values: dict[str, Any]) -> None:
        self.call = (name, cli, values)


def _recorder(name: str) -> Any:
    def record(cli: CliContext, **values: Any) -> int:
        raise Recorded(name, cli, values)

    return record


def _call_by_typer(args: list[str]) -> tuple[str, CliContext, dict[str, Any]] | None:
    try:
        app(args=args, prog_name="pit", standalone_mode=False)
    except Recorded as recorded:
        return recorded.call
    except Exception:  # a usage error: typer's answer, which the fast path must not give
        return None
    return None


def _call_by_argv(args: list[str]) -> tuple[str, CliContext, dict[str, Any]] | None:
    invocation = parse(args, os.environ)
    if invocation is None:
        return None
    try:
        invocation.run()
    except Recorded as recorded:
        return recorded.call
    raise AssertionError("the fast path called no implementation")


@pytest.fixture(autouse=True)
def recorders() -> Iterator[None]:
    with mock.patch.dict(os.environ, clear=False):
        os.environ.pop(PROJECT_DIR_VARIABLE, None)
        patches = [
            mock.patch.object(module, function, _recorder(name))
            for name, (module, function) in IMPLEMENTATIONS.items()
        ]
        for patch in patches:
            patch.start()
        try:
            yield
        finally:
            for patch in patches:
                patch.stop()


VALUES = st.sampled_from(["etl", "etl/load", "a b", "", "-x", "--json", "runs/x", "é", "=", "run"])
OPTION_STRINGS = sorted({*GLOBAL_OPTIONS, *(f for c in COMMANDS.values() for f in c.options)})
TOKENS = st.one_of(
    VALUES,
    st.sampled_from(OPTION_STRINGS),
    st.sampled_from(OPTION_STRINGS).flatmap(lambda o: VALUES.map(lambda v: f"{o}={v}")),
    st.sampled_from([*COMMANDS, "init", "serve", "--help", "--", "-", "-vf", "-Cws", "--bogus"]),
)


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    """Mostly well-formed lines (global options, a command, its options and arguments), with
    stray tokens mixed in."""
    line = []
    for flag in draw(st.lists(st.sampled_from(sorted(GLOBAL_OPTIONS)), max_size=3)):
        line += [flag] if GLOBAL_OPTIONS[flag].convert is None else [flag, draw(VALUES)]
    name = draw(st.sampled_from(sorted(COMMANDS)))
    line.append(name)
    command = COMMANDS[name]
    rest = [draw(VALUES) for _ in command.arguments]
    for flag in draw(st.lists(st.sampled_from(sorted(command.options)), max_size=4)):
        option = [flag] if command.options[flag].convert is None else [flag, draw(VALUES)]
        at = draw(st.integers(0, len(rest)))
        rest[at:at] = option
    line += rest
    for _ in range(draw(st.integers(0, 2))):
        line.insert(draw(st.integers(0, len(line))), draw(TOKENS))
    return line


@settings(max_examples=400, deadline=None)
@given(args=command_lines(), project_dir=st.sampled_from([None, "", "from-env"]))
def test_whenever_the_fast_path_answers_typer_makes_the_same_call(
    args: list[str], project_dir: str | None
) -> None:
    if project_dir is not None:
        os.environ[PROJECT_DIR_VARIABLE] = project_dir
    else:
        os.environ.pop(PROJECT_DIR_VARIABLE, None)
    fast = _call_by_argv(args)
    if fast is not None:
        assert _call_by_typer(args) == fast


@pytest.mark.parametrize(
    "args",
    [
        ["run", "etl"],
        ["-C", "ws", "run", "etl/load", "-v"],
        ["--project-dir=ws", "--secrets", "s.toml", "run", "--secrets=t.toml", "etl"],
        ["-C", "ws", "validate", "--json"],
        ["logs", "etl", "--list", "--json"],
        ["logs", "--run-id", "20260101_000000.000_etl", "etl/load", "-f"],
        ["-C", "ws", "outputs", "--project", "etl", "--type=table", "--location", "dw.*"],
    ],
)
def test_the_common_forms_take_the_fast_path_to_typers_call(args: list[str]) -> None:
    fast = _call_by_argv(args)
    assert fast is not None
    assert _call_by_typer(args) == fast


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--help"],
        ["run", "--help"],
        ["run"],
        ["run", "a", "b"],
        ["run", "etl", "--bogus"],
        ["-Cws", "run", "etl"],
        ["logs", "etl", "--run-id"],
        ["logs", "etl", "--run-id", "--json"],
        ["init", "x"],
        ["serve"],
        ["run", "--", "etl"],
    ],
)
def test_everything_else_is_left_to_typer(args: list[str]) -> None:
    assert parse(args, {}) is None


def test_shell_completion_is_left_to_typer() -> None:
    assert parse(["run", "etl"], {"_PIT_COMPLETE": "complete_bash"}) is None


def test_the_project_dir_comes_from_the_environment_unless_given() -> None:
    from_env = parse(["validate"], {PROJECT_DIR_VARIABLE: "ws"})
    given_too = parse(["-C", "other", "validate"], {PROJECT_DIR_VARIABLE: "ws"})
    assert from_env is not None
    assert given_too is not None
    assert from_env.cli.root == Path("ws")
    assert given_too.cli.root == Path("other")
