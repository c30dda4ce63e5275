"""`FtpClient` against a real pyftpdlib server (plain, without MLSD, and FTPS with a throwaway CA),
and the FTP secret parsing that builds its `FtpTarget`."""

from __future__ import annotations

import ftplib
import os
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from pit.connectors.ftp import FtpClient, FtpTarget, RemoteFile, ftp_target
from pit.connectors.target import ConnectorError

from .ftpserver import PASSWORD, USER, Certificates, FtpServer, make_certificates, serve_ftp
from .ftpserver import silent_server as silent_port

HANG_GUARD = 5.0
"""Seconds a failing or cancelled call may take: a guard against hangs, not a speed target."""

MODIFIED = 1_705_329_022
"""2024-01-15 14:30:22 UTC: when the server's files were last changed."""

SECRET = {"host": "ftp.example.com", "user": "data_user", "password": "secret123"}


def names_in(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


# --- secrets -> FtpTarget ----------------------------------------------------------------------


def test_structured_secret_with_defaults() -> None:
    target = ftp_target(SECRET)
    assert target == FtpTarget(
        host="ftp.example.com", port=21, user="data_user", password="secret123", tls=False
    )
    assert target.describe() == "FTP server ftp.example.com:21"


def test_structured_secret_with_port_tls_and_cafile() -> None:
    secret = SECRET | {"port": "2121", "tls": "TRUE", "cafile": "/etc/pit/ca.pem"}
    target = ftp_target(secret)
    assert (target.port, target.tls, target.cafile) == (2121, True, "/etc/pit/ca.pem")
    assert target.describe() == "FTPS server ftp.example.com:2121"


def test_the_dags_port_and_tls_win_over_the_secrets() -> None:
    secret = SECRET | {"port": "2121", "tls": "true"}
    target = ftp_target(secret, port=990, tls=False)
    assert (target.port, target.tls) == (990, False)


def test_a_plain_secret_is_refused() -> None:
    with pytest.raises(ConnectorError, match="plain value; make it a table with host, user"):
        ftp_target("ftp://user:secret123@host")


@pytest.mark.parametrize("field", ["host", "user", "password"])
def test_a_missing_field_is_named_and_the_password_never_shown(field: str) -> None:
    secret = {k: v for k, v in SECRET.items() if k != field}
    with pytest.raises(ConnectorError, match=f"has no {field} field") as caught:
        ftp_target(secret)
    assert "secret123" not in str(caught.value)


def test_an_empty_password_is_allowed() -> None:
    assert ftp_target(SECRET | {"password": ""}).password == ""


@pytest.mark.parametrize(
    ("field", "value", "fix"),
    [
        ("port", "twenty-one", "write a port number"),
        ("port", "70000", "write a port number"),
        ("tls", "yes", 'write "true" or "false"'),
    ],
)
def test_a_bad_port_or_tls_says_what_to_write(field: str, value: str, fix: str) -> None:
    with pytest.raises(ConnectorError, match=fix):
        ftp_target(SECRET | {field: value})


def test_the_password_stays_out_of_repr() -> None:
    assert "secret123" not in repr(ftp_target(SECRET))


def test_the_original_pits_form_a_plain_password_secret_with_host_and_user_in_pit_toml() -> None:
    target = ftp_target("p", host="h", user="u", port=2121, tls=True)
    assert target == FtpTarget(host="h", port=2121, user="u", password="p", tls=True)
    with pytest.raises(ConnectorError, match="plain value"):
        ftp_target("p", user="u")


def test_host_and_user_in_pit_toml_win_over_the_secrets_fields() -> None:
    target = ftp_target(SECRET, host="elsewhere", user="other")
    assert (target.host, target.user) == ("elsewhere", "other")


# --- a real server -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The server's files: two sales CSVs, one other file, a directory matching the pattern."""
    home = tmp_path / "home"
    (home / "incoming" / "sales_dir.csv").mkdir(parents=True)
    (home / "incoming" / "sales_2.csv").write_bytes(b"b" * 2048)
    (home / "incoming" / "sales_1.csv").write_bytes(b"id,amount\n1,10\n")
    (home / "incoming" / "notes.txt").write_text("not sales")
    for file in (home / "incoming").iterdir():
        os.utime(file, (MODIFIED, MODIFIED))
    return home


@pytest.fixture
def server(home: Path) -> Iterator[FtpServer]:
    with serve_ftp(home) as server:
        yield server


@pytest.fixture(params=["mlsd", "nlst", "tls"])
def any_server(request: pytest.FixtureRequest, home: Path) -> Iterator[FtpServer]:
    """A server with MLSD, one without (NLST + SIZE + MDTM), and an FTPS one."""
    options = {
        "mlsd": {},
        "nlst": {"mlsd": False},
        "tls": {"certificates": request.getfixturevalue("certificates")},
    }[request.param]
    with serve_ftp(home, **options) as server:
        yield server


@pytest.fixture
def local(tmp_path: Path) -> Path:
    local = tmp_path / "local"
    local.mkdir()
    return local


@pytest.mark.slow
async def test_list_gives_matching_files_only_sorted_with_sizes(any_server: FtpServer) -> None:
    async with await FtpClient.connect(any_server.target()) as client:
        files = await client.list("/incoming", "sales_*.csv")
        everything = await client.list("/incoming")

    assert [(f.path, f.name, f.size) for f in files] == [
        ("/incoming/sales_1.csv", "sales_1.csv", 15),
        ("/incoming/sales_2.csv", "sales_2.csv", 2048),
    ]
    assert [f.name for f in everything] == ["notes.txt", "sales_1.csv", "sales_2.csv"]
    # The server's text (MLSD modify fact or MDTM reply): UTC, YYYYMMDDHHMMSS.
    assert {f.modified for f in everything} == {"20240115143022"}


@pytest.mark.slow
async def test_a_growing_file_changes_size_between_lists(server: FtpServer) -> None:
    growing = server.home / "incoming" / "sales_1.csv"
    async with await FtpClient.connect(server.target()) as client:
        [before] = await client.list("/incoming", "sales_1.csv")
        with growing.open("ab") as file:
            file.write(b"2,20\n")
        [after] = await client.list("/incoming", "sales_1.csv")
    assert (before.size, after.size) == (15, 20)


@pytest.mark.slow
async def test_listing_a_missing_directory_fails_and_the_client_stays_usable(
    server: FtpServer,
) -> None:
    async with await FtpClient.connect(server.target()) as client:
        with pytest.raises(
            ConnectorError, match=r"listing '/nowhere' on FTP server .* replied '5\d\d "
        ):
            await client.list("/nowhere")
        assert len(await client.list("/incoming", "*.csv")) == 2


@pytest.mark.slow
async def test_download_writes_the_file_and_returns_its_size(
    server: FtpServer, local: Path
) -> None:
    async with await FtpClient.connect(server.target()) as client:
        size = await client.download("/incoming/sales_1.csv", local / "sales.csv")
    assert size == 15
    assert (local / "sales.csv").read_bytes() == b"id,amount\n1,10\n"
    assert names_in(local) == ["sales.csv"]


@pytest.mark.slow
async def test_a_failed_download_leaves_the_old_file_and_no_partial(
    server: FtpServer, local: Path
) -> None:
    (local / "sales.csv").write_text("yesterday")
    async with await FtpClient.connect(server.target()) as client:
        with pytest.raises(
            ConnectorError, match=r"downloading '/incoming/missing.csv' .* replied '550"
        ):
            await client.download("/incoming/missing.csv", local / "sales.csv")
    assert (local / "sales.csv").read_text() == "yesterday"
    assert names_in(local) == ["sales.csv"]


@pytest.mark.slow
async def test_a_cancelled_download_stops_promptly_and_leaves_nothing(
    home: Path, local: Path
) -> None:
    (home / "big.bin").write_bytes(b"x" * 1_000_000)
    # At 20 kB/s the download would take 50 s.
    with serve_ftp(home, download_bytes_per_second=20_000) as server:
        client = await FtpClient.connect(server.target())
        started = time.monotonic()
        with trio.move_on_after(0.3):
            await client.download("/big.bin", local / "big.bin")
            pytest.fail("the download should have been cancelled")
        assert time.monotonic() - started < HANG_GUARD
        assert names_in(local) == []
        with pytest.raises(ConnectorError, match=r"connection was closed .* connect again"):
            await client.list("/")
        await client.aclose()


@pytest.mark.slow
async def test_upload(server: FtpServer, local: Path) -> None:
    (local / "results.csv").write_bytes(b"a,b\n1,2\n")
    async with await FtpClient.connect(server.target()) as client:
        await client.upload(local / "results.csv", "/results.csv")
        with pytest.raises(ConnectorError, match=r"cannot read .*missing.csv"):
            await client.upload(local / "missing.csv", "/missing.csv")
        assert [f.name for f in await client.list("/", "*.csv")] == ["results.csv"]
    assert (server.home / "results.csv").read_bytes() == b"a,b\n1,2\n"


@pytest.mark.slow
async def test_move_creates_the_missing_destination_directory(server: FtpServer) -> None:
    async with await FtpClient.connect(server.target()) as client:
        await client.move("/incoming/sales_1.csv", "/archive/2024/sales_1.csv")
        await client.move("/incoming/sales_2.csv", "/archive/2024/sales_2.csv")
        with pytest.raises(ConnectorError, match=r"moving '/incoming/gone.csv' .* replied '550"):
            await client.move("/incoming/gone.csv", "/elsewhere/gone.csv")
    assert names_in(server.home / "archive" / "2024") == [
        "sales_1.csv",
        "sales_2.csv",
    ]
    assert not (server.home / "incoming" / "sales_1.csv").exists()
    assert not (server.home / "elsewhere").exists()


@pytest.mark.slow
async def test_ftps_end_to_end(home: Path, local: Path, certificates: Certificates) -> None:
    (local / "up.csv").write_bytes(b"up\n")
    with serve_ftp(home, certificates=certificates) as server:
        async with await FtpClient.connect(server.target()) as client:
            assert len(await client.list("/incoming", "*.csv")) == 2
            assert await client.download("/incoming/sales_2.csv", local / "down.csv") == 2048
            await client.upload(local / "up.csv", "/up.csv")
            await client.move("/up.csv", "/done/up.csv")
    assert (local / "down.csv").read_bytes() == b"b" * 2048
    assert (home / "done" / "up.csv").read_bytes() == b"up\n"


@pytest.mark.slow
async def test_ftps_refuses_a_certificate_it_does_not_trust(
    home: Path, certificates: Certificates
) -> None:
    with serve_ftp(home, certificates=certificates) as server:
        with pytest.raises(ConnectorError, match=r"not trusted .* set cafile in the FTP secret"):
            await FtpClient.connect(server.target(cafile=None))
        with pytest.raises(ConnectorError, match="cannot read the CA file"):
            await FtpClient.connect(server.target(cafile=str(home / "missing.pem")))
        with pytest.raises(ConnectorError, match=r"refused the login .* set tls = true"):
            # Plain FTP against a server that requires TLS.
            await FtpClient.connect(server.target(tls=False))


@pytest.mark.slow
async def test_a_wrong_password_is_a_connector_error_without_the_password(
    server: FtpServer,
) -> None:
    wrong = "wrong-" + PASSWORD
    with pytest.raises(ConnectorError, match="refused the login of user 'pit-user'") as caught:
        await FtpClient.connect(server.target(password=wrong))
    assert wrong not in str(caught.value)
    assert PASSWORD not in str(caught.value)


@pytest.mark.slow
async def test_a_server_that_goes_away_fails_the_next_call_promptly(server: FtpServer) -> None:
    client = await FtpClient.connect(server.target())
    server.stop()
    with trio.fail_after(HANG_GUARD), pytest.raises(ConnectorError) as caught:
        await client.list("/incoming")
    assert f"listing '/incoming' on FTP server 127.0.0.1:{server.port} failed" in str(caught.value)
    with trio.fail_after(HANG_GUARD):
        await client.aclose()


@pytest.mark.slow
async def test_connection_refused(server: FtpServer) -> None:
    server.stop()
    with pytest.raises(ConnectorError, match=r"connecting to FTP server .* refused"):
        await FtpClient.connect(server.target())


@pytest.mark.slow
async def test_a_server_that_never_answers_times_out() -> None:
    with silent_port() as port:
        target = FtpTarget(host="127.0.0.1", port=port, user="u", password="p")
        with trio.fail_after(HANG_GUARD), pytest.raises(ConnectorError, match=r"no answer.*0.2 s"):
            await FtpClient.connect(target, io_timeout=0.2)


def test_remote_file_is_frozen() -> None:
    file = RemoteFile(path="/a/b.csv", name="b.csv", size=1, modified=None)
    with pytest.raises(AttributeError):
        file.size = 2  # type: ignore[misc]


@pytest.mark.slow
def test_the_test_ftps_server_refuses_data_connections_without_session_reuse(
    home: Path, certificates: Certificates
) -> None:
    """What the FTPS tests rely on: stdlib FTP_TLS alone (a new TLS session per data connection)
    is refused, as vsftpd and FileZilla Server refuse it."""
    context = ssl.create_default_context(cafile=str(certificates.cafile))
    with (
        serve_ftp(home, certificates=certificates) as server,
        ftplib.FTP_TLS(context=context) as ftp,
    ):
        ftp.connect("127.0.0.1", server.port, timeout=HANG_GUARD)
        ftp.login(USER, PASSWORD)
        ftp.prot_p()
        with pytest.raises(ftplib.error_perm, match=r"522 TLS session .* not resumed"):
            ftp.nlst("/incoming")
