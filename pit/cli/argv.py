"""The commands that run most, read from the command line without typer.

typer declares pit's command line (`cli/app.py`), and it costs start-up: ~50 ms to import and
~80 ms more to coerce the parameters through pydantic, on every call, while a cron job or a CI
step may call `pit run` hundreds of times a day. So `cli/main.py` first asks `parse`: for
`run`, `validate`, `logs`, `outputs` and `status` written in the plain forms below it returns
the call to make; for anything else (`--help`, shell completion, an unknown or malformed option, a
missing or extra argument, the other commands) it returns None and typer takes over, with its
help and its error messages. `tests/cli/test_argv.py` holds the table below to typer's
declarations, and checks on generated command lines that both read them the same.

Read here: an option's value as `--name value`, `--name=value` or `-x value`; a flag as `--name`
or `-x`; the global options before the command (as typer reads them) and the command's own
after it, in any order among its arguments; a repeated option's last value (every value, in
order, of one declared to repeat). A value that is empty or starts with `-` is left to typer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from pit.cli.context import CliContext

COMPLETION_VARIABLE = "_PIT_COMPLETE"
"""Set by the shell when it asks typer for completions."""
PROJECT_DIR_VARIABLE = "PIT_PROJECT_DIR"


class Option(NamedTuple):  # NamedTuples: dataclasses would import inspect (~10 ms)
    dest: str
    """The implementation's keyword."""
    convert: Callable[[str], object] | None = None
    """How its value is read; None for a flag (True when given, else False)."""
    repeat: bool = False
    """Each time it is given adds a value to a list (empty when never given)."""


class Command(NamedTuple):
    arguments: tuple[str, ...]
    """Its positional arguments, all required."""
    options: Mapping[str, Option]
    call: Callable[[CliContext, dict[str, Any]], int]
    """Imports the implementation and calls it: the exit code."""


class Invocation(NamedTuple):
    command: Command
    cli: CliContext
    values: dict[str, Any]

    def run(self) -> int:
        return self.command.call(self.cli, self.values)


def _run(cli: CliContext, values: dict[str, Any]) -> int:
    from pit.cli.run import run_command

    return run_command(cli, **values)


def _validate(cli: CliContext, values: dict[str, Any]) -> int:
    from pit.cli.validate import validate_command

    return validate_command(cli, **values)


def _logs(cli: CliContext, values: dict[str, Any]) -> int:
    from pit.cli.logs import logs_command

    return logs_command(cli, **values)


def _outputs(cli: CliContext, values: dict[str, Any]) -> int:
    from pit.cli.outputs import outputs_command

    return outputs_command(cli, **values)


def _status(cli: CliContext, values: dict[str, Any]) -> int:
    from pit.cli.status import status_command

    return status_command(cli, **values)


GLOBAL_OPTIONS = {
    "--project-dir": Option("project_dir", Path),
    "-C": Option("project_dir", Path),
    "--verbose": Option("verbose"),
    "-v": Option("verbose"),
    "--secrets": Option("secrets", Path),
}

COMMANDS = {
    "run": Command(
        arguments=("target",),
        options={
            "--verbose": Option("verbose"),
            "-v": Option("verbose"),
            "--secrets": Option("secrets", Path),
            "--param": Option("params", str, repeat=True),
        },
        call=_run,
    ),
    "validate": Command(
        arguments=(),
        options={
            "--json": Option("as_json"),
            "--remote": Option("remote"),
            "--secrets": Option("secrets", Path),
        },
        call=_validate,
    ),
    "logs": Command(
        arguments=("target",),
        options={
            "--list": Option("list_runs"),
            "--run-id": Option("run_id", str),
            "--follow": Option("follow"),
            "-f": Option("follow"),
            "--json": Option("as_json"),
            "--server": Option("server", str),
        },
        call=_logs,
    ),
    "status": Command(arguments=(), options={"--json": Option("as_json")}, call=_status),
    "outputs": Command(
        arguments=(),
        options={
            "--project": Option("project", str),
            "--type": Option("type_", str),
            "--location": Option("location", str),
            "--json": Option("as_json"),
        },
        call=_outputs,
    ),
}


def parse(args: Sequence[str], environ: Mapping[str, str]) -> Invocation | None:
    """The call `args` (the command line after `pit`) asks for, or None to leave it to typer."""
    if COMPLETION_VARIABLE in environ:
        return None
    read = _read(args, 0, GLOBAL_OPTIONS, until_argument=True)
    if read is None or len(read[1]) != 1 or read[1][0] not in COMMANDS:
        return None
    given, (name,), after = read
    command = COMMANDS[name]
    read = _read(args, after, command.options, until_argument=False)
    if read is None or len(read[1]) != len(command.arguments):
        return None
    options, arguments, _ = read
    unset = {o.dest: _unset(o) for o in command.options.values()}
    values: dict[str, Any] = unset
    values |= options | dict(zip(command.arguments, arguments, strict=True))
    root = given.get("project_dir") or Path(environ.get(PROJECT_DIR_VARIABLE) or ".")
    verbose, secrets = given.get("verbose", False), given.get("secrets")
    assert isinstance(root, Path)
    assert isinstance(verbose, bool)
    assert secrets is None or isinstance(secrets, Path)
    return Invocation(command, CliContext(root=root, verbose=verbose, secrets=secrets), values)


def _read(
    args: Sequence[str], index: int, options: Mapping[str, Option], *, until_argument: bool
) -> tuple[dict[str, object], list[str], int] | None:
    """From `args[index]`: the options read (dest -> value), the arguments, and where it
    stopped (after the first argument if `until_argument`); None for what typer must read."""
    values: dict[str, object] = {}
    arguments: list[str] = []
    while index < len(args):
        token = args[index]
        index += 1
        if not token.startswith("-"):
            arguments.append(token)
            if until_argument:
                break
            continue
        name, equals, inline = token.partition("=") if token.startswith("--") else (token, "", "")
        option = options.get(name)
        if option is None:  # unknown, `--`, `-`, `--help`, `-vf`, `-Cdir`...
            return None
        if option.convert is None:
            if equals:
                return None
            values[option.dest] = True
            continue
        if equals:
            value = inline
        elif index < len(args):
            value = args[index]
            index += 1
        else:
            return None
        if not value or value.startswith("-"):
            return None
        if option.repeat:
            listed = values.setdefault(option.dest, [])
            assert isinstance(listed, list)
            listed.append(option.convert(value))
        else:
            values[option.dest] = option.convert(value)
    return values, arguments, index


def _unset(option: Option) -> object:
    """An option's value when it is not given."""
    if option.repeat:
        return []
    return None if option.convert else False
