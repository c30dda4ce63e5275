"""A throwaway PostgreSQL cluster of its own, for the tests (tests/conftest.py) and for
bench/load.py: initdb into a temporary folder, pg_ctl start on 127.0.0.1 and a free port."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

HANG_GUARD = 60.0
"""Seconds initdb or pg_ctl may take (a hang, not a slow start)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"
"""Where Debian and Ubuntu put the server binaries (one folder per major version)."""


def postgres_bin_dir() -> Path | None:
    """The newest PostgreSQL server binaries on this machine (else `initdb` on PATH); None when
    there are none."""
    candidates = Path("/").glob(POSTGRES_BIN_GLOB.lstrip("/"))
    folders = [folder for folder in candidates if (folder / "initdb").is_file()]
    if folders:
        return max(folders, key=lambda folder: int(folder.parent.name.split(".")[0]))
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class PostgresCluster:
    """A PostgreSQL cluster of its own in a temporary folder: trust authentication, listening on
    127.0.0.1 only, its unix socket in that folder, fsync off (nothing in it needs to survive).

    The server refuses to run as root, so when the tests run as root its commands run as the
    `postgres` user (or `nobody`), who owns the folder.
    """

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        # Not pytest's tmp_path: it lies under a root-only folder the server user cannot enter,
        # and a unix socket path must stay under ~100 characters.
        self.root = Path(tempfile.mkdtemp(prefix="pit-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._user: dict[str, Any] = {}
        if os.geteuid() == 0:
            account = _unprivileged_account()
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self._user = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}

    def _run(self, *argv: str) -> str:
        done = subprocess.run(
            [str(self.bin_dir / argv[0]), *argv[1:]],
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=HANG_GUARD,
            check=False,
            **self._user,
        )
        if done.returncode != 0:
            log = self.root / "server.log"
            server_log = log.read_text(errors="replace") if log.is_file() else ""
            raise RuntimeError(
                f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}{done.stderr}\n"
                f"{server_log}"
            )
        return done.stdout

    def start(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync", "--no-instructions",
        )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        log = str(self.root / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").is_file():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def psql_argv(self, database: str) -> list[str]:
        """psql, connected to `database` of this cluster."""
        return [str(self.bin_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                "-p", str(self.port), "-U", "postgres", "-d", database]  # fmt: skip

    def admin(self, statement: str) -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE) in database postgres."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(statement.encode())


def _unprivileged_account() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and no `postgres` or `nobody` user to run PostgreSQL as")
