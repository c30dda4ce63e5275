"""The ways a notification leaves pit, blocking (run them in a worker thread): an HTTP POST of
JSON (urllib: a notification needs no HTTP client of its own) and an email over SMTP
(smtplib, STARTTLS unless the secret says `starttls = "false"`, or implicit TLS on port 465)."""

from __future__ import annotations

import http.client
import json
import mimetypes
import smtplib
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from pathlib import Path

from pit.connectors.target import ConnectorError

MAX_ANSWER = 1024 * 1024
"""Bytes of an HTTP answer kept (an SDK `http_request`'s body)."""


def post_json(url: str, body: Mapping[str, object], timeout: float) -> None:
    """POST `body` as JSON; ConnectorError unless the answer is a 2xx."""
    status, _ = http_call("POST", url, body, {}, timeout)
    if not 200 <= status < 300:
        raise ConnectorError(f"the webhook answered {status}")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is the answer, not followed: it could take a token to another host."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def http_call(
    method: str,
    url: str,
    body: object | None,
    headers: Mapping[str, str],
    timeout: float,
) -> tuple[int, str]:
    """One HTTP request (a JSON body when `body` is not None): the status and the answer's
    text (at most `MAX_ANSWER` bytes); a redirect is not followed (its 3xx is the answer).
    ConnectorError when it cannot be made, whatever the reason."""
    if not url.startswith(("http://", "https://")):
        raise ConnectorError("the URL must be http:// or https://")
    data = None if body is None else json.dumps(body).encode()
    try:
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("User-Agent", "pit")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in headers.items():
            request.add_unredirected_header(name, value)
        with _OPENER.open(request, timeout=timeout) as answer:
            return answer.status, answer.read(MAX_ANSWER).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read(MAX_ANSWER).decode(errors="replace")
    except (http.client.HTTPException, ValueError) as exc:  # a bad URL, a garbled answer
        raise ConnectorError(f"{type(exc).__name__}: {exc}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConnectorError(
            f"cannot reach {urllib.parse.urlsplit(url).netloc}: {reason}"
        ) from None


def send_email(
    server: Mapping[str, str],
    to: Sequence[str],
    subject: str,
    text: str,
    timeout: float,
    attachments: Sequence[Path] = (),
) -> None:
    """Send a plain-text email (with files attached) through the SMTP server a structured
    secret describes."""
    host = server.get("host")
    sender = server.get("from") or server.get("user")
    if not host or not sender:
        raise ConnectorError("the email secret needs host and from (or user)")
    try:
        port = int(server.get("port") or 587)
    except ValueError:
        raise ConnectorError("the email secret's port is not a number") from None
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, ", ".join(to), subject
    message.set_content(text)
    for path in attachments:
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        main, _, sub = kind.partition("/")
        message.add_attachment(path.read_bytes(), maintype=main, subtype=sub, filename=path.name)
    context = ssl.create_default_context()
    if server.get("cafile"):
        context.load_verify_locations(server["cafile"])
    try:
        if port == 465:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        with smtp:
            if port != 465 and server.get("starttls", "true").lower() != "false":
                smtp.starttls(context=context)
            if server.get("user") and server.get("password"):
                smtp.login(server["user"], server["password"])
            smtp.send_message(message)
    except (smtplib.SMTPException, OSError, ValueError) as exc:
        raise ConnectorError(f"cannot send the email through {host}:{port}: {exc}") from None
