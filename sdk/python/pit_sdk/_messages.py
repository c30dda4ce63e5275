"""Email and HTTP through the run's broker: the task names a secret, the broker holds the SMTP
password or the API's token and does the sending, so the task never sees either."""

from __future__ import annotations

import json as _json
from collections.abc import Sequence
from typing import Any, NamedTuple

from pit_sdk._client import call
from pit_sdk._environment import require_text


class HttpResponse(NamedTuple):
    status: int
    text: str
    """The answer's body (at most 1 MiB of it)."""

    def json(self) -> Any:
        return _json.loads(self.text)


def send_email(
    secret: str,
    to: str | Sequence[str],
    subject: str,
    body: str,
    attachments: Sequence[str] = (),
) -> None:
    """Send an email through the SMTP server of the structured secret `secret` (host, port,
    user, password, from); `attachments` are file names in the run's data directory."""
    require_text(secret, "secret", "send_email")
    addresses = [to] if isinstance(to, str) else list(to)
    call(
        "send_email",
        {
            "secret": secret,
            "to": _json.dumps(addresses),
            "subject": subject,
            "body": body,
            "attachments": _json.dumps(list(attachments)),
        },
    )


def http_request(secret: str, method: str, path: str, *, json: Any = None) -> HttpResponse:
    """A request to the API of the structured secret `secret` (`base_url`, and `token` sent as
    `Authorization: Bearer <token>`, or `auth_header`/`auth_value`): `path` is under its
    base URL; `json`, when given, is the body."""
    require_text(secret, "secret", "http_request")
    params = {"secret": secret, "method": method, "path": path}
    if json is not None:
        params["json"] = _json.dumps(json)
    answer = _json.loads(call("http_request", params))
    return HttpResponse(status=int(answer["status"]), text=str(answer["body"]))
