"""Steering runs and DAGs from the command line: `pit cancel`, `pit pause`, `pit resume`.

`pit cancel <run_id>` stops a run wherever it runs on this machine: a run of `pit serve` (any
trigger but `manual`) through its API, found from the workspace (`.pit/serve.json`); a
foreground `pit run` by SIGTERM, which it takes as the user's Ctrl-C (running tasks get their
stop grace, the run ends `cancelled`). `pit pause`/`resume <dag>` go through pit serve's API
when one runs (its triggers stop or start at once), else write `.pit/paused.json`, which the
next pit serve reads.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from pit.cli.context import CliContext
from pit.clock import SystemClock
from pit.errors import SteerError
from pit.messages.run import RunRecord
from pit.spec.load import Workspace
from pit.spec.secrets import GLOBAL
from pit.store.owner import owner_alive
from pit.store.paused import PAUSED_FILE, Pause, set_paused
from pit.store.rundir import CANCEL_NOTE, RunPaths, read_manifest
from pit.store.serving import read_serve_address

REQUEST_TIMEOUT = 10.0
FOREGROUND_WAIT = 60.0
"""Seconds `pit cancel` waits for a foreground run to record its end before it says so."""


def cancel_command(cli: CliContext, *, run_id: str) -> int:
    workspace = cli.workspace(projects=False)
    paths = _run_folder(workspace, run_id)
    record = _record(paths)
    if record is not None and record.state.terminal:
        print(f"{run_id} has ended ({record.state.value}); nothing to cancel")
        return 1
    if record is None or record.trigger != "manual":
        return _through_serve(cli, workspace, run_id)
    return _foreground(paths, record)


def _record(paths: RunPaths) -> RunRecord | None:
    try:
        return read_manifest(paths.manifest)
    except FileNotFoundError:
        return None  # accepted by pit serve, not started: it has no record yet
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SteerError(f"cannot read {paths.manifest}: {exc}") from exc


def _through_serve(cli: CliContext, workspace: Workspace, run_id: str) -> int:
    answer = _post_to_serve(cli, workspace, f"/api/runs/{run_id}/cancel")
    if answer is None:
        raise SteerError(
            f"{run_id} is a run of pit serve, and no pit serve of this workspace is running "
            "(no live .pit/serve.json)"
        )
    if answer.get("status") == "cancelled":
        print(f"{run_id} was waiting for its turn: cancelled, it will not start")
    else:
        print(f"{run_id}: cancelling (its running tasks get their stop grace)")
    return 0


def pause_command(cli: CliContext, *, dag: str, pause: bool) -> int:
    """`pit pause` / `pit resume`: the DAG's triggers start nothing / start again."""
    workspace = cli.workspace()
    if dag not in {p.dag.name for p in workspace.projects if p.dag is not None}:
        raise SteerError(f"no DAG named '{dag}' in {workspace.root} (see `pit status`)")
    verb = "pause" if pause else "resume"
    if _post_to_serve(cli, workspace, f"/api/dags/{dag}/{verb}") is None:
        entry = Pause(at=SystemClock().now(), by=f"pit {verb} ({getpass.getuser()})")
        try:
            set_paused(workspace.root, dag, entry if pause else None)
        except OSError as exc:
            raise SteerError(f"cannot write {workspace.root / PAUSED_FILE}: {exc}") from exc
    if pause:
        print(
            f"{dag}: paused: its schedule, FTP watch and webhook start nothing (`pit resume {dag}`)"
        )
    else:
        print(f"{dag}: resumed")
    return 0


def _post_to_serve(
    cli: CliContext, workspace: Workspace, path: str, body: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """POST to the workspace's pit serve; its JSON answer, or None when no pit serve runs."""
    address = read_serve_address(workspace.root)
    if address is None:
        return None
    data = b"" if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{address.url}{path}", method="POST", data=data)
    request.add_header("Content-Type", "application/json")
    token = _api_token(cli, workspace)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise SteerError(f"pit serve refused: {_error_of(exc)} (HTTP {exc.code})") from None
    except (OSError, ValueError) as exc:
        raise SteerError(f"cannot reach pit serve at {address.url}: {exc}") from exc
    if not isinstance(answer, dict):
        raise SteerError(f"pit serve at {address.url} answered {answer!r}")
    return answer


def rerun_command(
    cli: CliContext,
    *,
    run_id: str,
    tasks: tuple[str, ...] | None,
    latest_code: bool,
    verbose: bool,
    secrets: Path | None,
) -> int:
    """`pit rerun`: a run of pit serve is re-run by pit serve (through its API) when one runs;
    a foreground run's, or any when none runs, here in the foreground."""
    workspace = cli.workspace()
    paths = _run_folder(workspace, run_id)
    record = _record(paths)
    if record is None:
        raise SteerError(f"{run_id} has no run.json: it never started, there is nothing to reuse")
    if record.trigger != "manual" and read_serve_address(workspace.root) is not None:
        body: dict[str, Any] = {"latest_code": latest_code}
        body.update({"tasks": list(tasks)} if tasks else {"from": "failed"})
        answer = _post_to_serve(cli, workspace, f"/api/runs/{run_id}/rerun", body)
        assert answer is not None
        print(f"pit serve re-runs {run_id} as {answer['run_id']} (`pit logs {record.dag} -f`)")
        return 0
    from pit.actors.plans import plan_rerun  # the actors: only for a run made here
    from pit.cli.run import run_plan

    plan = plan_rerun(record, paths, workspace, tasks=tasks, latest_code=latest_code)
    reused = ", ".join(sorted(plan.reused)) or "none"
    print(f"pit: re-running {run_id}; reusing {reused}", file=sys.stderr)
    loaded = cli.load_secrets(workspace, secrets)
    return run_plan(cli, workspace, plan, loaded, verbose=verbose)


def _run_folder(workspace: Workspace, run_id: str) -> RunPaths:
    if not run_id or "/" in run_id or run_id.startswith("."):
        raise SteerError(f"'{run_id}' is not a run id (see `pit logs <dag> --list`)")
    paths = RunPaths(root=workspace.runs_dir / run_id)
    if not paths.root.is_dir():
        raise SteerError(f"no run {run_id} under {workspace.runs_dir}")
    return paths


def _api_token(cli: CliContext, workspace: Workspace) -> str | None:
    name = workspace.config.api_token
    if name is None:
        return None
    loaded = cli.load_secrets(workspace)
    if loaded is None:
        raise SteerError(f"api_token names secret '{name}', and there is no secrets file")
    return loaded.resolve(GLOBAL, name)


def _error_of(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read())["error"])
    except (OSError, ValueError, KeyError, TypeError):
        return exc.reason


def _foreground(paths: RunPaths, record: RunRecord) -> int:
    owner = record.owner
    alive = None if owner is None else owner_alive(owner)
    if owner is None or alive is None:
        raise SteerError(f"{paths.run_id} runs on another machine or cannot be told apart")
    if not alive:
        raise SteerError(f"{paths.run_id} is not running: its pit run (pid {owner.pid}) is gone")
    with contextlib.suppress(OSError):  # without it the run is cancelled all the same
        (paths.root / CANCEL_NOTE).write_text(f"pit cancel ({getpass.getuser()})")
    os.kill(owner.pid, signal.SIGTERM)
    print(f"{paths.run_id}: sent SIGTERM to its pit run (pid {owner.pid})", file=sys.stderr)
    deadline = time.monotonic() + FOREGROUND_WAIT
    while time.monotonic() < deadline:
        now = _record(paths)
        if now is not None and now.state.terminal:
            print(f"{paths.run_id} ended {now.state.value}")
            return 0
        time.sleep(0.1)
    print(f"{paths.run_id} has not recorded its end yet; see `pit logs`", file=sys.stderr)
    return 1
