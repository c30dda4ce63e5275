"""The ways a notification leaves pit, blocking (run them in a worker thread): an HTTP POST of
JSON (urllib: a notification needs no HTTP client of its own) and an email over SMTP
(smtplib, STARTTLS unless the secret says `starttls = "false"`, or implicit TLS on port 465)."""

from __future__ import annotations

import json
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from email.message import EmailMessage

from pit.connectors.target import ConnectorError


def post_json(url: str, body: Mapping[str, object], timeout: float) -> None:
    """POST `body` as JSON; ConnectorError unless the answer is a 2xx."""
    if not url.startswith(("http://", "https://")):
        raise ConnectorError("a notification webhook's URL must be http:// or https://")
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "pit"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read()
    except urllib.error.HTTPError as exc:
        raise ConnectorError(f"the webhook answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConnectorError(f"cannot reach the webhook: {reason}") from None


def send_email(
    server: Mapping[str, str], to: Sequence[str], subject: str, text: str, timeout: float
) -> None:
    """Send a plain-text email through the SMTP server a structured secret describes."""
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
    except (smtplib.SMTPException, OSError) as exc:
        raise ConnectorError(f"cannot send the email through {host}:{port}: {exc}") from None
