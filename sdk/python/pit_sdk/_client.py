"""The wire protocol to the run's SDK broker, and the functions that ask the broker for something.

One request per connection (sdk-wire-protocol.md): connect to `PIT_SOCKET` (a Unix socket path,
or `host:port` for TCP), write one JSON object `{"method": ..., "params": {...}}`, half-close the
write side, read the answer to EOF. The answer is `{"result": <str>, "error": null}` or
`{"result": null, "error": "<message>"}`; an error becomes `RuntimeError("SDK error: <message>")`.

Every request carries the optional param `task` (PIT_TASK_NAME) when pit set it, so the broker can
say which task asked (old brokers ignore params they do not know).
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Mapping

from pit_sdk._environment import (
    SOCKET_ENV,
    parquet_file_name,
    require_env,
    require_text,
    task_name,
)

_TCP_ADDRESS = re.compile(r"(?P<host>.+):(?P<port>[0-9]+)", re.ASCII)
"""`PIT_SOCKET` is TCP when it ends in `:<digits>` (pit's fallback without Unix sockets)."""

_RECEIVE_CHUNK = 65536


def call(method: str, params: Mapping[str, str]) -> str:
    """Send one request to the broker and return its result (a string, "" when it has none).

    No timeout: a bulk load may take as long as it takes, and the task's own timeout in pit.toml
    bounds a broker that never answers.
    """
    address = require_env(SOCKET_ENV, method)
    sent_params = dict(params)
    task = task_name()
    if task is not None:
        sent_params["task"] = task
    payload = json.dumps({"method": method, "params": sent_params}).encode("utf-8")
    with _connect(address) as connection:
        try:
            connection.sendall(payload)
            connection.shutdown(socket.SHUT_WR)
            answer = _read_to_eof(connection)
        except OSError as exc:
            raise RuntimeError(
                f"lost the connection to the pit SDK broker at {address!r} ({SOCKET_ENV}) "
                f"during {method}: {exc}"
            ) from exc
    return _result(answer, method, address)


def _connect(address: str) -> socket.socket:
    tcp = _TCP_ADDRESS.fullmatch(address)
    try:
        if tcp is not None:
            host = tcp["host"]
            if host.startswith("[") and host.endswith("]"):  # an IPv6 literal, [::1]:port
                host = host[1:-1]
            return socket.create_connection((host, int(tcp["port"])))
        family = getattr(socket, "AF_UNIX", None)
        if family is None:
            raise RuntimeError(
                f"{SOCKET_ENV}={address!r} is a Unix socket path, but this Python has no Unix "
                "sockets; pit gives host:port on such platforms"
            )
        connection = socket.socket(family, socket.SOCK_STREAM)
        try:
            connection.connect(address)
        except BaseException:
            connection.close()
            raise
        return connection
    except OSError as exc:
        raise RuntimeError(
            f"cannot reach the pit SDK broker at {address!r} ({SOCKET_ENV}): "
            f"{exc.strerror or exc}. The broker lives as long as the run; is this process "
            "running inside a pit task whose run is still going?"
        ) from exc


def _read_to_eof(connection: socket.socket) -> bytes:
    chunks = []
    while chunk := connection.recv(_RECEIVE_CHUNK):
        chunks.append(chunk)
    return b"".join(chunks)


def _result(answer: bytes, method: str, address: str) -> str:
    if not answer:
        raise RuntimeError(
            f"the pit SDK broker at {address!r} closed the connection without answering {method}"
        )
    try:
        response = json.loads(answer)
    except ValueError as exc:
        raise RuntimeError(
            f"the pit SDK broker at {address!r} answered {method} with something that is not "
            f"JSON ({exc}): {answer[:200]!r}"
        ) from exc
    if not isinstance(response, dict):
        raise RuntimeError(
            f"the pit SDK broker at {address!r} answered {method} with {answer[:200]!r}, "
            "not a JSON object with result and error"
        )
    error = response.get("error")
    if error:
        raise RuntimeError(f"SDK error: {error}")
    result = response.get("result")
    if result is None:
        return ""
    if not isinstance(result, str):
        raise RuntimeError(
            f"the pit SDK broker at {address!r} answered {method} with a "
            f"{type(result).__name__} result; the protocol's results are strings"
        )
    return result


def get_secret(key: str) -> str:
    """The secret `key`, looked up in the run's project section first, then `[global]`.

    A plain secret comes back as its value; a structured secret (a table of fields) as a JSON
    object string of all its fields (`json.loads` it, or use `get_secret_field`).
    Raises RuntimeError("SDK error: ...") when the broker has no such secret.
    """
    return call("get_secret", {"key": key})


def get_secret_field(secret: str, field: str) -> str:
    """One field of a structured secret, e.g. `get_secret_field("warehouse_db", "host")`."""
    return call("get_secret_field", {"secret": secret, "field": field})


def load_data(
    file: str, table: str, connection: str, schema: str = "dbo", mode: str = "append"
) -> str:
    """Bulk-load the Parquet file `file` of the data directory into `schema.table` of the
    database the secret `connection` names; pit's broker does the load, not this process.

    `file` may be given with or without its `.parquet` suffix. `mode` is `append`,
    `truncate_and_load` or `create_or_replace`. Returns the broker's summary, such as
    "50000 rows loaded".
    """
    file_name = parquet_file_name(file, "load_data")
    return call(
        "load_data",
        {
            "file": file_name,
            "table": table,
            "connection": connection,
            "schema": schema,
            "mode": mode,
        },
    )


# --- FTP: the broker logs in with the structured secret; this process never sees the password.


def ftp_list(secret: str, directory: str, pattern: str = "*") -> list[str]:
    """Names of the files in `directory` on the FTP server of `secret` matching the glob."""
    require_text(secret, "secret", "ftp_list")
    if not isinstance(directory, str):
        raise TypeError(f"ftp_list(): directory is a str, not {type(directory).__name__}")
    require_text(pattern, "pattern", "ftp_list")
    names: list[str] = json.loads(
        call("ftp_list", {"secret": secret, "directory": directory, "pattern": pattern})
    )
    return names


def ftp_download(secret: str, path: str, *, pattern: str | None = None) -> list[str]:
    """Download `path` (a file), or the files in the directory `path` matching `pattern`, into
    the run's data directory; returns the local paths."""
    require_text(secret, "secret", "ftp_download")
    if pattern is None:
        require_text(path, "path", "ftp_download")
        params = {"secret": secret, "remote_path": path}
    else:
        if not isinstance(path, str):
            raise TypeError(f"ftp_download(): path is a str, not {type(path).__name__}")
        require_text(pattern, "pattern", "ftp_download")
        params = {"secret": secret, "directory": path, "pattern": pattern}
    local: list[str] = json.loads(call("ftp_download", params))
    return local


def ftp_upload(secret: str, local_name: str, remote_path: str) -> None:
    """Upload the file `local_name` of the data directory to `remote_path`."""
    require_text(secret, "secret", "ftp_upload")
    require_text(local_name, "local_name", "ftp_upload")
    require_text(remote_path, "remote_path", "ftp_upload")
    call("ftp_upload", {"secret": secret, "local_name": local_name, "remote_path": remote_path})


def ftp_move(secret: str, src: str, dst: str) -> None:
    """Move or rename a file on the FTP server (e.g. into an archive folder)."""
    require_text(secret, "secret", "ftp_move")
    require_text(src, "src", "ftp_move")
    require_text(dst, "dst", "ftp_move")
    call("ftp_move", {"secret": secret, "src": src, "dst": dst})
