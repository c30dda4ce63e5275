"""Real FTP and FTPS servers for the connector tests: pyftpdlib on 127.0.0.1 (a free port) in a
background thread, serving a temporary home directory to one user.

`serve_ftp(home)` runs a plain server, `serve_ftp(home, certificates=...)` one that requires TLS
on the control and the data connections (certificates from `make_certificates`, a throwaway
trustme CA). `silent_server()` accepts connections and never answers: a hung server.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import trustme
from OpenSSL._util import lib as openssl
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler, ThrottledDTPHandler, TLS_DTPHandler, TLS_FTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import FTPServer

from pit.connectors.ftp import FtpTarget

HOST = "127.0.0.1"
USER = "pit-user"
PASSWORD = "correct-horse-battery"
STOP_GUARD = 5.0
"""Seconds the server thread may take to stop."""


@attrs.frozen(kw_only=True)
class Certificates:
    cafile: Path
    """The CA's certificate: what a client must trust."""
    certfile: Path
    """The server's private key and certificate chain (for 127.0.0.1 and localhost)."""


def make_certificates(directory: Path) -> Certificates:
    ca = trustme.CA()
    server = ca.issue_cert(HOST, "localhost")
    certificates = Certificates(cafile=directory / "ca.pem", certfile=directory / "server.pem")
    ca.cert_pem.write_to_path(str(certificates.cafile))
    server.private_key_and_cert_chain_pem.write_to_path(str(certificates.certfile))
    return certificates


class _SessionReusingDtpHandler(TLS_DTPHandler):  # type: ignore[misc]
    """Refuses a TLS data connection that does not resume the control connection's session, as
    vsftpd (`require_ssl_reuse`, its default) and FileZilla Server do."""

    def handle_ssl_established(self) -> None:
        # pyOpenSSL has no public call for this; its private binding of OpenSSL's does.
        if not openssl.SSL_session_reused(self.socket._ssl):
            self.cmd_channel.respond("522 TLS session of data connection not resumed.")
            self.close()


class FtpServer:
    """A running server; `stop()` ends it and drops every client connection."""

    def __init__(
        self,
        home: Path,
        *,
        certificates: Certificates | None = None,
        mlsd: bool = True,
        download_bytes_per_second: int = 0,
    ) -> None:
        self.home = home
        self.certificates = certificates
        authorizer = DummyAuthorizer()
        authorizer.add_user(USER, PASSWORD, str(home), perm="elradfmwMT")
        # A fresh handler class per server: pyftpdlib keeps its settings (and TLS context) on it.
        settings: dict[str, Any] = {
            "authorizer": authorizer,
            "banner": "pit test server",
            "auth_failed_timeout": 0.05,  # pyftpdlib waits 3 s before saying 530
        }
        if not mlsd:
            commands = FTPHandler.proto_cmds
            settings["proto_cmds"] = {
                k: v for k, v in commands.items() if k not in ("MLSD", "MLST")
            }
        if download_bytes_per_second:
            settings["dtp_handler"] = type(
                "Throttled", (ThrottledDTPHandler,), {"write_limit": download_bytes_per_second}
            )
        base: type[FTPHandler] = FTPHandler
        if certificates is not None:
            base = TLS_FTPHandler
            settings |= {
                "dtp_handler": _SessionReusingDtpHandler,
                "certfile": str(certificates.certfile),
                "ssl_context": None,
                "tls_control_required": True,
                "tls_data_required": True,
            }
            if not mlsd:
                settings["proto_cmds"] = {
                    k: v for k, v in TLS_FTPHandler.proto_cmds.items() if k not in ("MLSD", "MLST")
                }
        handler = type("Handler", (base,), settings)
        self._server = FTPServer((HOST, 0), handler, ioloop=IOLoop())
        self.port: int = self._server.address[1]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="ftp-server", daemon=True)
        self._thread.start()

    def target(self, **changes: Any) -> FtpTarget:
        """How the client reaches this server (TLS trusting the test CA when it has TLS)."""
        target = FtpTarget(
            host=HOST,
            port=self.port,
            user=USER,
            password=PASSWORD,
            tls=self.certificates is not None,
            cafile=str(self.certificates.cafile) if self.certificates else None,
        )
        return attrs.evolve(target, **changes)

    def stop(self) -> None:
        """Stop serving and drop every client connection. Safe to call twice."""
        self._stopping.set()
        self._thread.join(STOP_GUARD)
        assert not self._thread.is_alive(), "the FTP server thread did not stop"

    def _serve(self) -> None:
        while not self._stopping.is_set():
            # One round of the server's loop (its serve_forever logs a start line each time).
            self._server.ioloop.loop(timeout=0.01, blocking=False)
        self._server.close_all()


@contextlib.contextmanager
def serve_ftp(home: Path, **options: Any) -> Iterator[FtpServer]:
    server = FtpServer(home, **options)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A port where connections are accepted (by the kernel) and never answered."""
    with socket.create_server((HOST, 0)) as listener:
        yield listener.getsockname()[1]
