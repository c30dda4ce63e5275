"""The `pit` command line as typer declares it: every command, option and help text.

Each command here only turns typer's arguments into a call of its implementation (`pit/cli/
<command>.py`, which does not import typer, imported when the command runs) and its return into
the exit code. The commands
that run most are also parsed by `cli/argv.py` without typer (see `cli/main.py`); a test holds
that parser to the declarations below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from pit.cli.context import CliContext

app = typer.Typer(
    name="pit",
    help="Lightweight data orchestration: DAGs of plain executables.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help and errors: rich's formatting costs ~50 ms of every `pit --help`.
    rich_markup_mode=None,
)


def _cli(ctx: typer.Context) -> CliContext:
    assert isinstance(ctx.obj, CliContext)
    return ctx.obj


def _exit(code: int) -> NoReturn:
    raise typer.Exit(code)


@app.callback()
def main_options(
    ctx: typer.Context,
    project_dir: Annotated[
        Path,
        typer.Option(
            "--project-dir",
            "-C",
            envvar="PIT_PROJECT_DIR",
            help="Workspace root: the folder holding projects/ and pit_config.toml.",
        ),
    ] = Path("."),
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Verbose output.")] = False,
    secrets: Annotated[
        Path | None,
        typer.Option(
            "--secrets", help="Secrets TOML file (overrides secrets_dir in pit_config.toml)."
        ),
    ] = None,
) -> None:
    ctx.obj = CliContext(root=project_dir, verbose=verbose, secrets=secrets)


@app.command("run")
def run(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="DAG name, or dag/task to run one task.")],
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Stream task output live.")
    ] = False,
    secrets: Annotated[Path | None, typer.Option("--secrets", help="Secrets TOML file.")] = None,
    params: Annotated[
        list[str] | None,
        typer.Option("--param", help="A param of the run, name=value (repeatable)."),
    ] = None,
) -> None:
    """Run a DAG now. Exit code 0 on success, 1 on failure, 130 if interrupted, 2 for a param
    that does not fit the DAG's [dag.params]."""
    from pit.cli.run import run_command

    _exit(
        run_command(_cli(ctx), target=target, verbose=verbose, secrets=secrets, params=params or [])
    )


@app.command("backfill")
def backfill(
    ctx: typer.Context,
    dag: Annotated[str, typer.Argument(help="The DAG whose fire times to run.")],
    start: Annotated[
        str, typer.Option("--from", help="First day (2026-11-01) or time, in the DAG's zone.")
    ],
    end: Annotated[str, typer.Option("--to", help="Last day (all of it) or time.")],
    max_parallel: Annotated[
        int, typer.Option("--max-parallel", min=1, max=64, help="Runs at a time.")
    ] = 1,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the fire times and what would run.")
    ] = False,
    params: Annotated[
        list[str] | None,
        typer.Option("--param", help="A param of every run, name=value (repeatable)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the runs as JSON.")] = False,
) -> None:
    """Run a DAG once for each fire time of its schedule in a range, oldest first, each with its
    own scheduled time. Fire times whose run succeeded are skipped: run it again to resume.
    Exit 0 when every run succeeded, 1 when one failed, 130 if interrupted."""
    from pit.cli.backfill import backfill_command

    _exit(
        backfill_command(
            _cli(ctx),
            dag=dag,
            start=start,
            end=end,
            max_parallel=max_parallel,
            dry_run=dry_run,
            params=params or [],
            as_json=as_json,
        )
    )


@app.command("validate")
def validate(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print problems as a JSON list.")] = False,
    remote: Annotated[
        bool,
        typer.Option("--remote", help="Also look up each git-backed DAG's git_ref on its remote."),
    ] = False,
    secrets: Annotated[
        Path | None,
        typer.Option("--secrets", help="Check every secret the DAGs name against this file."),
    ] = None,
) -> None:
    """Validate pit_config.toml and every projects/*/pit.toml. Exit code 1 if anything is wrong
    (warnings alone do not fail), 2 if there is no workspace to validate."""
    from pit.cli.validate import validate_command

    _exit(validate_command(_cli(ctx), as_json=as_json, remote=remote, secrets=secrets))


@app.command("logs")
def logs(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="DAG name, or dag/task for one task's log.")],
    list_runs: Annotated[bool, typer.Option("--list", help="List the DAG's runs.")] = False,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Show this run.")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the run ends.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --list: JSON output.")] = False,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="A remote pit serve's URL: TARGET is a run id or a DAG there (token: "
            "PIT_API_TOKEN).",
        ),
    ] = None,
) -> None:
    """Show task logs of a DAG's latest run (or of --run-id), or list its runs."""
    from pit.cli.logs import logs_command

    cli = _cli(ctx)
    _exit(
        logs_command(
            cli,
            target=target,
            list_runs=list_runs,
            run_id=run_id,
            follow=follow,
            as_json=as_json,
            server=server,
        )
    )


@app.command("outputs")
def outputs(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option("--project", help="Only this DAG.")] = None,
    type_: Annotated[str | None, typer.Option("--type", help="Only this output type.")] = None,
    location: Annotated[
        str | None, typer.Option("--location", help="Glob on the location, e.g. 'warehouse.*'.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List declared outputs, optionally filtered."""
    from pit.cli.outputs import outputs_command

    cli = _cli(ctx)
    _exit(outputs_command(cli, project=project, type_=type_, location=location, as_json=as_json))


@app.command("status")
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """Every DAG: its schedule and next run, its triggers, its last run, its success rate over
    its last 20 runs and its runs active now (from the run store)."""
    from pit.cli.status import status_command

    _exit(status_command(_cli(ctx), as_json=as_json))


@app.command("worker", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def worker(
    ctx: typer.Context,
    scheduler: Annotated[
        str | None, typer.Argument(help="The Dask scheduler's address, tcp://host:8786.")
    ] = None,
    scheduler_file: Annotated[
        str | None, typer.Option("--scheduler-file", help="Or the scheduler's file.")
    ] = None,
) -> None:
    """Start a Dask worker that runs pit's tasks (`[executor] kind = "dask"`): `dask worker`
    with pit's preload, which makes sure no task process outlives the worker. Options after
    the address go to `dask worker` (--nworkers, --nthreads, --resources "memory=4e9"...)."""
    from pit.cli.worker import worker_command

    _exit(worker_command(scheduler, scheduler_file, list(ctx.args)))


@app.command("sync")
def sync(
    ctx: typer.Context,
    dags: Annotated[
        list[str] | None, typer.Argument(help="The git-backed DAGs to sync (default: all).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """Fetch the clones of git-backed DAGs and check out their refs (and make a clone's Python
    venv), so their next runs start at once; says each DAG's commit before and after."""
    from pit.cli.sync import sync_command

    _exit(sync_command(_cli(ctx), dags=dags or [], as_json=as_json))


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run's id (see `pit logs <dag> --list`).")],
) -> None:
    """Cancel a run: a run of pit serve through its API, a foreground `pit run` by SIGTERM.
    Running tasks get their stop grace; the run ends cancelled."""
    from pit.cli.steer import cancel_command

    _exit(cancel_command(_cli(ctx), run_id=run_id))


@app.command("rerun")
def rerun(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run to re-run.")],
    from_failure: Annotated[
        bool,
        typer.Option("--from-failure", help="Run the tasks that did not succeed (the default)."),
    ] = False,
    tasks: Annotated[
        str | None,
        typer.Option("--tasks", help="Run these tasks (a,b) and every task downstream of them."),
    ] = None,
    latest_code: Annotated[
        bool,
        typer.Option("--latest-code", help="Use the project as it is now, not the run's snapshot."),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Stream task output.")] = False,
    secrets: Annotated[Path | None, typer.Option("--secrets", help="Secrets TOML file.")] = None,
) -> None:
    """Re-run a run: a new run, linked to it, from its snapshot; the tasks that succeeded are
    reused (with their files in data/), the others run."""
    from pit.cli.steer import rerun_command

    if from_failure and tasks:
        raise typer.BadParameter("--from-failure and --tasks exclude each other")
    named = tuple(name.strip() for name in tasks.split(",") if name.strip()) if tasks else None
    _exit(
        rerun_command(
            _cli(ctx),
            run_id=run_id,
            tasks=named,
            latest_code=latest_code,
            verbose=verbose,
            secrets=secrets,
        )
    )


@app.command("pause")
def pause(
    ctx: typer.Context, dag: Annotated[str, typer.Argument(help="The DAG to pause.")]
) -> None:
    """Pause a DAG: its schedule, FTP watch and webhook start nothing until `pit resume`;
    runs asked for by hand still start. Kept across restarts of pit serve."""
    from pit.cli.steer import pause_command

    _exit(pause_command(_cli(ctx), dag=dag, pause=True))


@app.command("resume")
def resume(
    ctx: typer.Context, dag: Annotated[str, typer.Argument(help="The DAG to resume.")]
) -> None:
    """Resume a paused DAG: its triggers start runs again."""
    from pit.cli.steer import pause_command

    _exit(pause_command(_cli(ctx), dag=dag, pause=False))


@app.command("new")
def new(
    directory: Annotated[Path, typer.Argument(help="The folder to make the workspace in.")],
) -> None:
    """Create a workspace: pit_config.toml, an example project that runs as created, a secrets
    file git ignores, a .gitignore and a README."""
    from pit.cli.new import new_command

    _exit(new_command(directory=directory))


@app.command("init")
def init(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Project (and DAG) name.")],
    type_: Annotated[
        str, typer.Option("--type", "-t", help="python, sql, shell or dbt.")
    ] = "python",
) -> None:
    """Create projects/<name>/ with a pit.toml and example tasks."""
    from pit.cli.init import init_command

    _exit(init_command(_cli(ctx), name=name, type_=type_))


secrets_app = typer.Typer(
    help="Age identities, and the secrets pit reads (names, or one value).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(secrets_app, name="secrets")


@secrets_app.command("keygen")
def secrets_keygen(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Where to write it (default ~/.config/pit/age-key.txt)."
        ),
    ] = None,
) -> None:
    """Make an age identity (0600; never replacing one) and print its public key."""
    from pit.cli.secrets import keygen_command

    _exit(keygen_command(output=output))


@secrets_app.command("encrypt")
def secrets_encrypt(
    ctx: typer.Context,
    source: Annotated[
        Path | None,
        typer.Option("--input", "-i", help="The plaintext file (default: the one in use)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where (default: <input>.age).")
    ] = None,
) -> None:
    """Encrypt a plaintext secrets file for the recipients in secrets_recipients (once: an
    encrypted file is never replaced; the plaintext is left for you to delete)."""
    from pit.cli.secrets import encrypt_command

    _exit(encrypt_command(_cli(ctx), source=source, output=output))


@secrets_app.command("set")
def secrets_set(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="The section: a DAG's name, or global.")],
    key: Annotated[str, typer.Argument(help="The secret.")],
    value: Annotated[
        str | None, typer.Argument(help="Its value; - reads it from stdin (out of history).")
    ] = None,
    field: Annotated[
        list[str] | None,
        typer.Option(
            "--field", help="name=value of a structured secret (repeatable; value - reads stdin)."
        ),
    ] = None,
) -> None:
    """Set a plain secret, or fields of a structured one; the file is rewritten whole
    (encrypted again when it is age's, the previous one kept as .bak)."""
    from pit.cli.secrets import set_command

    _exit(set_command(_cli(ctx), project=project, key=key, value=value, fields=field or []))


@secrets_app.command("remove")
def secrets_remove(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="The section.")],
    key: Annotated[str, typer.Argument(help="The secret.")],
) -> None:
    """Remove a secret (the previous file kept as .bak)."""
    from pit.cli.secrets import remove_command

    _exit(remove_command(_cli(ctx), project=project, key=key))


@secrets_app.command("add-recipient")
def secrets_add_recipient(
    ctx: typer.Context,
    public_key: Annotated[str, typer.Argument(help="An age public key (age1...).")],
) -> None:
    """Add a recipient to secrets_recipients and encrypt the secrets file for all of them."""
    from pit.cli.secrets import add_recipient_command

    _exit(add_recipient_command(_cli(ctx), public_key=public_key))


@secrets_app.command("edit")
def secrets_edit(ctx: typer.Context) -> None:
    """Edit the secrets in $EDITOR; saved (encrypted again) only once they parse."""
    from pit.cli.secrets import edit_command

    _exit(edit_command(_cli(ctx)))


@secrets_app.command("get")
def secrets_get(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="The DAG whose section is read first.")],
    key: Annotated[str, typer.Argument(help="The secret.")],
) -> None:
    """Print a secret as a task of `project` would get it (a structured one as TOML)."""
    from pit.cli.secrets import get_command

    _exit(get_command(_cli(ctx), project=project, key=key))


@secrets_app.command("list")
def secrets_list(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Argument(help="Only this DAG's and [global].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the secrets by section: their names, never their values."""
    from pit.cli.secrets import list_command

    _exit(list_command(_cli(ctx), project=project, as_json=as_json))


@secrets_app.command("audit")
def secrets_audit(
    ctx: typer.Context,
    secret: Annotated[
        str | None, typer.Option("--secret", help="Only this secret (and its fields).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """Who read, was refused or changed which secret, and when: newest first, never a value."""
    from pit.cli.secrets import audit_command

    _exit(audit_command(_cli(ctx), secret=secret, limit=limit, as_json=as_json))


@app.command("serve")
def serve(
    ctx: typer.Context,
    port: Annotated[
        int, typer.Option("--port", help="Port of the webhooks, the API and the dashboard.")
    ] = 9090,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (0.0.0.0 for all).")
    ] = "127.0.0.1",
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log every line of task output.")
    ] = False,
    secrets: Annotated[Path | None, typer.Option("--secrets", help="Secrets TOML file.")] = None,
    keep_going: Annotated[
        bool,
        typer.Option(
            "--keep-going", help="Serve the valid DAGs even when some projects have problems."
        ),
    ] = False,
) -> None:
    """Run the scheduler: cron, webhook and FTP-watch triggers, until SIGINT/SIGTERM.

    The first signal stops the triggers and lets active runs finish (within shutdown_grace);
    a second one stops them at once. SIGHUP reloads every pit.toml.
    """
    from pit.cli.serve import serve_command

    cli = _cli(ctx)
    _exit(
        serve_command(
            cli, port=port, host=host, verbose=verbose, secrets=secrets, keep_going=keep_going
        )
    )


store = typer.Typer(
    name="store",
    help="The run store: an index of every run of the workspace (.pit/pit.db).",
    no_args_is_help=True,
)
app.add_typer(store)


@store.command("rebuild")
def store_rebuild(ctx: typer.Context) -> None:
    """Make the run store again from the run folders (their run.json are the record).

    Run it while no pit runs: a store damaged, lost, or written by a newer pit is replaced.
    """
    from pit.cli.store import rebuild_command

    _exit(rebuild_command(_cli(ctx)))
