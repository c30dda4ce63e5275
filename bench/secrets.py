"""Start-up cost of an age-encrypted secrets file: `pit run` with it against the plaintext file.

Two workspaces that differ only in their secrets file: the same 1-task DAG (`one`, a `.sh` task
`#!/bin/sh\\ntrue`, which pit runs with bash) and the same 200 secrets, in `secrets.toml`
(plain) or in `secrets.toml.age` (age), which `secrets_dir` in `pit_config.toml` names. The
secrets are a realistic mix: `[global]` and five project sections (the DAG's own among them),
plain tokens, connection URLs with a password, and structured tables (host, port, user,
password; some with a database or a `sensitive` list). The age file is encrypted with pyrage
(as `pit secrets encrypt` does) for one X25519 identity generated here, whose key file every
child gets as PIT_AGE_KEY_FILE (the plain side too, where nothing reads it; PIT_AGE_KEY is
unset). Before timing, `pit secrets list --json` must show the same 200 secrets on both sides.

Each `pit -C <workspace> run one` is a whole process, timed by wall clock, stdout to DEVNULL,
in rounds alternating the two sides after one untimed warm-up of each; figures are medians.
Every run must exit 0 with its run.json in state `success`, or the benchmark stops; its `runs/`
folder is removed after each (outside the timing). For scale (no target), `info` lines give the
median CPU time of the same runs (user + system from os.wait4, their task included: far less
moved by this machine's other work than the wall clock), and the time of
`pit.spec.load.load_secrets` on each file in a fresh process (the pyrage import and the
decryption included): the part of the difference that is the secrets file itself.

Target: the encrypted file adds < 30 ms to `pit run`: median(encrypted) - median(plain).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from _harness import (
    PYTHON,
    Measure,
    Report,
    child_env,
    cleanup,
    common_args,
    fmt_seconds,
    make_tmp,
    median,
    medians_table,
    pit_argv,
    run_wait4,
    toml_string,
    validate_workspace,
    warmed_rounds,
    write_dag_of,
)

TARGET_MS = 30.0
SECRETS = 200
DAG = "one"
SECTIONS = ("global", DAG, "sales", "crm", "finance", "reporting")
TRUE_SCRIPT = "#!/bin/sh\ntrue\n"
PLAIN, ENCRYPTED = "plain", "encrypted"

LOAD_PROGRAM = """\
import sys, time
from pathlib import Path
from pit.spec.load import load_secrets

started = time.perf_counter()
load_secrets(Path(sys.argv[1]))
print(time.perf_counter() - started)
"""
"""Times `load_secrets` of one file (its first call) in a fresh process, pit's loader imported."""


def secrets_toml(count: int, seed: int = 10) -> str:
    """`count` secrets spread over SECTIONS: plain tokens, connection URLs with a password, and
    structured tables (each a secret of its own), as a team's secrets file holds them."""
    rng = random.Random(seed)
    plain: dict[str, list[str]] = {section: [] for section in SECTIONS}
    tables: dict[str, list[str]] = {section: [] for section in SECTIONS}

    def token(length: int = 40) -> str:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(length))

    for index in range(count):
        section = SECTIONS[index % len(SECTIONS)]
        kind = index % 5
        host = f"db{index:03d}.internal.example.com"
        if kind in (0, 1):
            plain[section].append(f"api_token_{index:03d} = {toml_string(token())}")
        elif kind == 2:
            url = f"postgresql://etl_{index:03d}:{token(24)}@{host}:5432/warehouse"
            plain[section].append(f"warehouse_url_{index:03d} = {toml_string(url)}")
        else:
            lines = [
                f"[{section}.connection_{index:03d}]",
                f"host = {toml_string(host)}",
                'port = "5432"',
                f'user = "svc_{index:03d}"',
                f"password = {toml_string(token(32))}",
            ]
            if kind == 4:
                lines += ['database = "analytics"', 'sensitive = ["host"]']
            tables[section].append("\n".join(lines))
    parts = []
    for section in SECTIONS:
        parts.append("\n".join([f"[{section}]", *plain[section]]))
        parts.extend(tables[section])
    return "\n\n".join(parts) + "\n"


def build_workspace(workspace: Path, secrets_file: str) -> None:
    """The 1-task DAG, with `secrets_dir` naming `secrets_file` (written by the caller)."""
    write_dag_of(workspace, DAG, 1, TRUE_SCRIPT, chain=False, max_active_tasks=1)
    (workspace / "pit_config.toml").write_text(f"secrets_dir = {toml_string(secrets_file)}\n")


def write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def build(tmp: Path) -> tuple[dict[str, Path], Path]:
    """The two workspaces, by side, and the age identity's key file."""
    import pyrage  # pit's own dependency: what `pit secrets encrypt` uses
    from pyrage import x25519

    identity = x25519.Identity.generate()
    key_file = tmp / "age-key.txt"
    write_private(key_file, f"# public key: {identity.to_public()}\n{identity}\n".encode())
    text = secrets_toml(SECRETS)
    workspaces = {PLAIN: tmp / "ws-plain", ENCRYPTED: tmp / "ws-encrypted"}
    build_workspace(workspaces[PLAIN], "secrets.toml")
    write_private(workspaces[PLAIN] / "secrets.toml", text.encode())
    build_workspace(workspaces[ENCRYPTED], "secrets.toml.age")
    sealed = pyrage.encrypt(text.encode(), [identity.to_public()])
    write_private(workspaces[ENCRYPTED] / "secrets.toml.age", sealed)
    return workspaces, key_file


def check_secrets(workspaces: Mapping[str, Path], env: Mapping[str, str]) -> int:
    """Both workspaces must hold the same secrets, SECRETS of them, as pit reads them."""
    listed = {}
    for side, workspace in workspaces.items():
        done = subprocess.run(
            [*pit_argv(), "-C", str(workspace), "secrets", "list", "--json"],
            env=dict(env),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"secrets: pit cannot read the {side} file:\n{done.stderr}")
        listed[side] = json.loads(done.stdout)
    count = sum(len(names) for names in listed[PLAIN].values())
    if listed[PLAIN] != listed[ENCRYPTED] or count != SECRETS:
        raise SystemExit(f"secrets: the two files differ or hold {count} secrets, not {SECRETS}")
    return count


def load_times(workspaces: Mapping[str, Path], env: Mapping[str, str], tmp: Path) -> str:
    """`load_secrets` of each file in a fresh process (after the warm-up: byte-code cached)."""
    program = tmp / "load.py"
    program.write_text(LOAD_PROGRAM)
    files = {PLAIN: "secrets.toml", ENCRYPTED: "secrets.toml.age"}
    shown = []
    for side, workspace in workspaces.items():
        done = subprocess.run(
            [PYTHON, str(program), str(workspace / files[side])],
            env=dict(env),
            capture_output=True,
            text=True,
            check=True,
        )
        shown.append(f"{side} {float(done.stdout) * 1000:.1f}ms")
    return "load_secrets in a fresh process (pyrage import and decryption included): " + (
        ", ".join(shown)
    )


def timed_cpu(argv: Sequence[str], env: Mapping[str, str]) -> tuple[float, float]:
    """Wall seconds of the whole process and its CPU seconds (user + system, the tasks it
    reaped included): a figure this machine's other work moves far less than the wall clock."""
    seconds, usage = run_wait4(argv, env)
    return seconds, usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = common_args(__doc__.splitlines()[0])
    args = parser.parse_args()
    repeat = args.repeat or (3 if args.quick else 15)
    tmp = make_tmp("secrets", args)
    try:
        return _run(tmp, args, repeat)
    finally:
        cleanup(tmp, args)


def _run(tmp: Path, args: argparse.Namespace, repeat: int) -> int:
    workspaces, key_file = build(tmp)
    env = child_env(tmp, pyc_cache=not args.no_pyc_cache)
    env.pop("PIT_AGE_KEY", None)  # it would win over PIT_AGE_KEY_FILE
    env["PIT_AGE_KEY_FILE"] = str(key_file)
    for workspace in workspaces.values():
        validate_workspace(workspace, env)
    count = check_secrets(workspaces, env)
    runs = dict.fromkeys(workspaces, 0)
    cpu_seconds: dict[str, list[float]] = {side: [] for side in workspaces}

    def pit_run(side: str) -> Measure:
        workspace = workspaces[side]

        def measure() -> float:
            seconds, cpu = timed_cpu([*pit_argv(), "-C", str(workspace), "run", DAG], env)
            cpu_seconds[side].append(cpu)
            records = list((workspace / "runs").glob("*/run.json"))
            states = [json.loads(record.read_text())["state"] for record in records]
            if states != ["success"]:
                raise SystemExit(f"secrets: the {side} run ended {states}, not success")
            shutil.rmtree(workspace / "runs", ignore_errors=True)  # the same state each time
            runs[side] += 1
            return seconds

        return measure

    plain_size = (workspaces[PLAIN] / "secrets.toml").stat().st_size
    sealed_size = (workspaces[ENCRYPTED] / "secrets.toml.age").stat().st_size
    print(
        f"secrets: `pit run` of a 1-task DAG with {count} secrets, plain ({plain_size:,} bytes) "
        f"or age-encrypted ({sealed_size:,} bytes), {repeat} rounds",
        file=sys.stderr,
        flush=True,
    )
    samples, med = warmed_rounds({side: pit_run(side) for side in workspaces}, repeat)
    difference = med[ENCRYPTED] - med[PLAIN]

    report = Report("secrets", quick=args.quick)
    cpu = {side: median(values[1:]) for side, values in cpu_seconds.items()}  # not the warm-up
    report.info.append(
        f"CPU time (user + system, tasks included), medians: plain {fmt_seconds(cpu[PLAIN])}, "
        f"encrypted {fmt_seconds(cpu[ENCRYPTED])}: "
        f"{(cpu[ENCRYPTED] - cpu[PLAIN]) * 1000:+.1f}ms"
    )
    report.info.append(load_times(workspaces, env, tmp))
    report.info.append(
        f"{runs[PLAIN]} plain and {runs[ENCRYPTED]} encrypted runs (warm-up included), "
        "each exit code 0 and state success"
    )
    print()
    print(medians_table("pit run one", samples))
    print(
        f"\nencrypted - plain: {difference * 1000:+.1f}ms "
        f"({fmt_seconds(med[ENCRYPTED])} vs {fmt_seconds(med[PLAIN])})"
    )
    report.check(
        f"pit run, encrypted - plain secrets file ({count} secrets), medians",
        difference * 1000,
        TARGET_MS,
        unit=" ms",
        detail=f"{fmt_seconds(med[ENCRYPTED])} vs {fmt_seconds(med[PLAIN])}",
    )
    if args.quick:
        report.info.append(f"--quick: {repeat} rounds (15 in the full run)")
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
