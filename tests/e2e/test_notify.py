"""Notifications under the real `pit run`: a failed run tells a webhook (retried after a 500),
an SMTP server (aiosmtpd on 127.0.0.1) and a local command, and every try is recorded."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Iterator
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import Pit, Workspace
from tests.pgcluster import free_port

pytestmark = pytest.mark.e2e


class Receiver(http.server.ThreadingHTTPServer):
    """Answers the first POST 500 and the others 204, keeping each body."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.bodies: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, str | None]] = []
        """Method, path and Authorization header of each request."""


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.server.bodies.append(json.loads(self.rfile.read(length)))
        self.server.requests.append(("POST", self.path, self.headers["Authorization"]))
        self.send_response(500 if len(self.server.bodies) == 1 else 204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        from email import message_from_bytes

        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def test_a_failed_run_is_told_by_webhook_email_and_command_each_try_recorded(
    workspace: Workspace, pit: Pit
) -> None:
    with receiver() as hook, smtp_server() as (mailbox, smtp_port):
        workspace.write(
            "secrets.toml",
            f'[global.smtp]\nhost = "127.0.0.1"\nport = "{smtp_port}"\nfrom = "pit@example.com"\n'
            'starttls = "false"\n',
        )
        workspace.config('secrets_dir = "secrets.toml"\n')
        project = workspace.shell_project(
            "etl",
            {"work": "echo boom\nexit 3\n"},
            extra=f"""
            [[dag.notify]]
            on = ["failure"]
            channel = "webhook"
            url = "http://127.0.0.1:{hook.server_address[1]}/hook"
            retries = 2

            [[dag.notify]]
            on = ["failure"]
            channel = "email"
            secret = "smtp"
            to = ["ops@example.com"]

            [[dag.notify]]
            on = ["failure", "success"]
            channel = "command"
            command = "sh tell.sh"
            """,
        )
        (project / "tell.sh").write_text(
            'echo "$PIT_NOTIFY_EVENT $PIT_RUN_STATE" >> "$PIT_RUN_DIR/told.txt"\n'
        )
        result = pit("run", "etl")
        assert result.returncode == 1, result.stdout + result.stderr

    run = workspace.only_run("etl")
    assert [b["event"] for b in hook.bodies] == ["failure", "failure"]  # the 500, then the retry
    body = hook.bodies[-1]
    assert (body["dag"], body["state"], body["failed_tasks"]) == ("etl", "failed", ["work"])
    assert body["run_id"] == run.name
    assert "boom" in body["log_tail"]["work"]
    (mail,) = mailbox.messages
    assert mail["To"] == "ops@example.com"
    assert mail["Subject"] == f"[pit] etl failure: {run.name}"
    assert (run / "told.txt").read_text() == "failure failed\n"
    tries = [json.loads(line) for line in (run / "notifications.jsonl").read_text().splitlines()]
    assert sorted((t["channel"], t["attempt"], t["ok"]) for t in tries) == [
        ("command", 1, True),
        ("email", 1, True),
        ("webhook", 1, False),
        ("webhook", 2, True),
    ]
    (refused,) = [t for t in tries if not t["ok"]]
    assert refused["error"] == "the webhook answered 500"


def test_a_notification_that_cannot_go_changes_nothing_for_the_run(
    workspace: Workspace, pit: Pit
) -> None:
    port = free_port()  # nothing listens there
    workspace.shell_project(
        "etl",
        {"work": "echo fine\n"},
        extra=f"""
        [[dag.notify]]
        on = ["success"]
        channel = "webhook"
        url = "http://127.0.0.1:{port}/hook"
        retries = 0
        """,
    )
    result = pit("run", "etl")
    assert result.returncode == 0, result.stdout + result.stderr
    run = workspace.only_run("etl")
    assert workspace.manifest(run)["state"] == "success"
    (attempt,) = [json.loads(x) for x in (run / "notifications.jsonl").read_text().splitlines()]
    assert attempt["ok"] is False
    assert attempt["error"].startswith(f"cannot reach 127.0.0.1:{port}: ")


def test_a_run_still_going_past_its_sla_is_told_once(workspace: Workspace, pit: Pit) -> None:
    project = workspace.shell_project(
        "slow",
        {"work": "sleep 2\n"},
        dag_keys='sla = "1s"',
        extra="""
        [[dag.notify]]
        on = ["sla_miss", "success"]
        channel = "command"
        command = "sh tell.sh"
        """,
    )
    (project / "tell.sh").write_text('echo "$PIT_NOTIFY_EVENT" >> "$PIT_RUN_DIR/told.txt"\n')
    result = pit("run", "slow")
    assert result.returncode == 0, result.stdout + result.stderr
    told = (workspace.only_run("slow") / "told.txt").read_text().split()
    assert told == ["sla_miss", "success"]


SENDER = """
import json, os
from pit_sdk import http_request, send_email

with open(os.environ["PIT_DATA_DIR"] + "/r.csv", "w") as report:
    report.write("a\\n1\\n")
first = http_request("api", "POST", "/v1/events", json={"n": 1})
second = http_request("api", "POST", "v1/events", json={"n": 2})
print(json.dumps([first.status, second.status]))
send_email("smtp", "ops@example.com", "report ready", "see attached", attachments=["r.csv"])
"""


def test_a_task_sends_email_and_calls_an_api_without_holding_their_secrets(
    workspace: Workspace, pit: Pit
) -> None:
    import sys

    with receiver() as api, smtp_server() as (mailbox, smtp_port):
        workspace.write(
            "secrets.toml",
            f'[global.smtp]\nhost = "127.0.0.1"\nport = "{smtp_port}"\nfrom = "pit@example.com"\n'
            'starttls = "false"\npassword = "smtp-pa55"\n'
            f'[global.api]\nbase_url = "http://127.0.0.1:{api.server_address[1]}/"\n'
            'token = "tok-5ecret-123"\n',
        )
        workspace.config('secrets_dir = "secrets.toml"\n')
        workspace.project(
            "etl",
            f'[dag]\nname = "etl"\n[[tasks]]\nname = "send"\nscript = "send.py"\n'
            f'runner = "$ {sys.executable}"\n',
            {"send.py": SENDER},
        )
        result = pit("run", "etl")
        assert result.returncode == 0, result.stdout + result.stderr

    run = workspace.only_run("etl")
    log = (run / "logs" / "send.log").read_text()
    assert "[500, 204]" in log
    assert api.requests == [
        ("POST", "/v1/events", "Bearer tok-5ecret-123"),
        ("POST", "/v1/events", "Bearer tok-5ecret-123"),
    ]
    assert api.bodies == [{"n": 1}, {"n": 2}]
    (mail,) = mailbox.messages
    assert (mail["To"], mail["Subject"]) == ("ops@example.com", "report ready")
    attached = [part.get_filename() for part in mail.walk() if part.get_filename()]
    assert attached == ["r.csv"]
    audit = [json.loads(line) for line in (run / "secret_access.jsonl").read_text().splitlines()]
    assert [(a["method"], a["secret"]) for a in audit] == [
        ("http_request", "api"),
        ("http_request", "api"),
        ("send_email", "smtp"),
    ]
