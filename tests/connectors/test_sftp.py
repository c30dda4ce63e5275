"""The SFTP client against a real SFTP server on 127.0.0.1 (asyncssh's): list, download,
upload, move; the host key checked; a password or a key logs in; every failure one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pit.connectors.ftp import ftp_target, open_session
from pit.connectors.target import ConnectorError
from tests.sftpserver import SftpServer, sftp_server

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> SftpServer:
    root = tmp_path / "remote"
    (root / "in").mkdir(parents=True)
    (root / "in" / "a.csv").write_text("1,2\n")
    (root / "in" / "b.txt").write_text("x\n")
    with sftp_server(root) as running:
        yield running  # type: ignore[misc]


async def test_list_download_upload_and_move(server: SftpServer, tmp_path: Path) -> None:
    async with await open_session(ftp_target(server.secret())) as sftp:
        listed = await sftp.list("/in", "*.csv")
        assert [(f.path, f.name, f.size) for f in listed] == [("/in/a.csv", "a.csv", 4)]
        assert listed[0].modified is not None
        local = tmp_path / "a.csv"
        assert await sftp.download("/in/a.csv", local) == 4
        assert local.read_text() == "1,2\n"
        await sftp.upload(local, "/in/c.csv")  # type: ignore[union-attr]
        await sftp.move("/in/a.csv", "/archive/2026/a.csv")
    assert (server.root / "in" / "c.csv").read_text() == "1,2\n"
    assert (server.root / "archive" / "2026" / "a.csv").exists()
    assert not (server.root / "in" / "a.csv").exists()


async def test_a_private_key_logs_in(server: SftpServer) -> None:
    secret = server.secret(private_key=server.client_key)
    del secret["password"]
    async with await open_session(ftp_target(secret)) as sftp:
        assert [f.name for f in await sftp.list("/in")] == ["a.csv", "b.txt"]


def other_key_line(server: SftpServer) -> str:
    """A known_hosts line for the server's address with another key: a server in disguise."""
    import asyncssh

    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh")
    return f"[127.0.0.1]:{server.port} {other.decode().strip()}"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"known_hosts": ""}, "has no known_hosts field"),
        ({"known_hosts": "other"}, "a host key other than known_hosts holds"),
        ({"password": "wrong"}, "Authentication failed"),
    ],
)
async def test_a_refusal_is_one_line_naming_the_server(
    server: SftpServer, change: dict[str, str], message: str
) -> None:
    if change.get("known_hosts") == "other":
        change = {"known_hosts": other_key_line(server)}
    with pytest.raises(ConnectorError) as info:
        await open_session(ftp_target(server.secret(**change)))
    assert message in str(info.value)
    assert f"127.0.0.1:{server.port}" in str(info.value)
    assert "sftp-pa55" not in str(info.value)
