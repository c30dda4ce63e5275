"""A real SFTP server on 127.0.0.1 for the tests: asyncssh's, in a thread with its own asyncio
loop, serving a folder (chrooted) to one user with a password or an authorized key."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import attrs

from tests.pgcluster import free_port

USER, PASSWORD = "loader", "sftp-pa55"


@attrs.frozen
class SftpServer:
    root: Path
    port: int
    host_key_line: str
    """Its host key as a known_hosts line (what `ssh-keyscan -p PORT 127.0.0.1` prints)."""
    client_key: str
    """A private key (OpenSSH text) the server lets `USER` log in with."""

    def secret(self, **fields: str) -> dict[str, str]:
        return {
            "protocol": "sftp",
            "host": "127.0.0.1",
            "port": str(self.port),
            "user": USER,
            "password": PASSWORD,
            "known_hosts": self.host_key_line,
            **fields,
        }


class _Server(asyncssh.SSHServer):
    def __init__(self, client_public: Any) -> None:
        self._client_public = client_public

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == USER and password == PASSWORD

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: Any) -> bool:
        return username == USER and key.public_data == self._client_public.public_data


@contextlib.contextmanager
def sftp_server(root: Path) -> Iterator[SftpServer]:
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    port = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop: list[Any] = []

    async def serve() -> None:
        server = await asyncssh.listen(
            "127.0.0.1",
            port,
            server_host_keys=[host_key],
            server_factory=lambda: _Server(client_key.convert_to_public()),
            sftp_factory=lambda channel: asyncssh.SFTPServer(channel, chroot=str(root)),
        )
        stop.append(server)
        started.set()
        await server.wait_closed()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    started.wait(10)
    public = host_key.export_public_key("openssh").decode().strip()
    try:
        yield SftpServer(
            root=root,
            port=port,
            host_key_line=f"[127.0.0.1]:{port} {public}",
            client_key=client_key.export_private_key("openssh").decode(),
        )
    finally:
        loop.call_soon_threadsafe(stop[0].close)
        thread.join(10)
        loop.close()
