"""Who may use the API and the dashboard: bearer tokens, browser sessions, and requests from
other sites refused.

- A script sends `Authorization: Bearer <token>`: `api_token` may do anything, `api_read_token`
  only read.
- A browser logs in at `/login` with one of those tokens and gets a session: an HttpOnly,
  SameSite=Strict cookie naming it, held here in memory (a restart of pit serve logs everyone
  out). Every request that changes something must also carry the session's CSRF token in the
  `X-CSRF-Token` header, which only the dashboard's own pages can read.
- With no token configured, only this machine is answered (a loopback client, with a loopback
  `Host`, so a DNS-rebinding page cannot pass as local); a browser there gets a session without
  logging in, so its requests carry a CSRF token all the same.
- Whatever the credentials, a request that changes something, or opens a WebSocket, from a page
  of another origin (its `Origin` header) is refused: a browser sends no SameSite=Strict cookie
  along with it, and a script on another site must not steer a local pit serve.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Callable
from typing import Literal
from urllib.parse import urlsplit

import attrs
from quart import Request, Websocket
from quart.typing import ResponseReturnValue

from pit.messages.web import ApiTokens
from pit.web.responses import bearer_token, error, same_token, unauthorized

COOKIE = "pit_session"
CSRF_HEADER = "X-CSRF-Token"
LIFETIME = 12 * 3600.0
"""Seconds a session lasts from its login."""
MAX_SESSIONS = 10_000
"""Sessions held at most; past it the oldest is forgotten (its browser logs in again)."""

Role = Literal["full", "read"]

LOCAL_ONLY = (
    "pit_config.toml sets no api_token (the name of a secret holding its bearer token), so "
    "only this machine is answered, at a loopback address (http://127.0.0.1:<port>, or "
    "localhost)"
)


@attrs.frozen(kw_only=True)
class Session:
    role: Role
    csrf: str
    expires: float
    token_digest: bytes
    """Which token it was opened with: a session ends when its token changes in the secrets."""


@attrs.define
class Sessions:
    clock: Callable[[], float] = time.monotonic
    _by_id: dict[str, Session] = attrs.field(init=False, factory=dict)

    def open(self, role: Role, token: str) -> tuple[str, Session]:
        while len(self._by_id) >= MAX_SESSIONS:
            del self._by_id[next(iter(self._by_id))]  # dicts keep insertion order: the oldest
        session_id = secrets.token_urlsafe(32)
        session = Session(
            role=role,
            csrf=secrets.token_urlsafe(32),
            expires=self.clock() + LIFETIME,
            token_digest=_digest(token),
        )
        self._by_id[session_id] = session
        return session_id, session

    def get(self, session_id: str | None, tokens: ApiTokens) -> Session | None:
        """The live session named by a cookie; None when unknown, expired, or opened with a
        token that is no longer the current one."""
        if not session_id:
            return None
        session = self._by_id.get(session_id)
        if session is None:
            return None
        current = _role_token(tokens, session.role)
        if session.expires < self.clock() or current is None:
            del self._by_id[session_id]
            return None
        if not hmac.compare_digest(session.token_digest, _digest(current)):
            del self._by_id[session_id]
            return None
        return session

    def close(self, session_id: str | None) -> None:
        if session_id:
            self._by_id.pop(session_id, None)


LOCAL = ""
"""The "token" of a session opened for a local browser while no token is configured."""


def _role_token(tokens: ApiTokens, role: Role) -> str | None:
    if tokens.local_only:
        return LOCAL if role == "full" else None
    return tokens.full if role == "full" else tokens.read_only


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def login_role(tokens: ApiTokens, presented: str) -> Role | None:
    """The role a token given at the login page grants; None for a wrong one."""
    if tokens.full is not None and same_token(presented, tokens.full):
        return "full"
    if tokens.read_only is not None and same_token(presented, tokens.read_only):
        return "read"
    return None


def authorize(
    asked: Request | Websocket, tokens: ApiTokens, sessions: Sessions, *, reads: bool
) -> ResponseReturnValue | None:
    """None when the API request may go on; else the answer that refuses it."""
    if (not reads or isinstance(asked, Websocket)) and cross_site(asked):
        return error(403, "refused: the request comes from a page of another site")
    if tokens.unreadable is not None:
        return error(503, f"the API's token cannot be read: {tokens.unreadable}")
    presented = bearer_token(asked.headers.get("Authorization"))
    if presented is None:
        session = sessions.get(asked.cookies.get(COOKIE), tokens)
        if session is not None:
            return _session_may(asked, session, reads=reads)
    if tokens.local_only:
        if local(asked):
            return None
        return error(403, LOCAL_ONLY)
    if presented is not None:
        role = login_role(tokens, presented)
        if role == "full":
            return None
        if role == "read":
            return None if reads else error(403, "the read-only token cannot change anything")
    return unauthorized("unauthorized")


def _session_may(
    asked: Request | Websocket, session: Session, *, reads: bool
) -> ResponseReturnValue | None:
    if reads:
        return None
    sent = asked.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode("latin-1"), session.csrf.encode()):
        return error(403, "refused: missing or wrong CSRF token (reload the page)")
    if session.role != "full":
        return error(403, "the read-only token cannot change anything")
    return None


def cross_site(asked: Request | Websocket) -> bool:
    """Whether a browser sent this from a page of another origin than this server's."""
    origin = asked.headers.get("Origin")
    if origin is None:
        fetch_site = asked.headers.get("Sec-Fetch-Site")
        return fetch_site is not None and fetch_site not in ("same-origin", "none")
    parts = urlsplit(origin)
    return parts.netloc.lower() != asked.host.lower() or parts.scheme not in ("http", "https")


def local(asked: Request | Websocket) -> bool:
    """A client on this machine that asked for this machine by a loopback name."""
    return is_loopback(asked.remote_addr) and _loopback_host(asked.host)


def is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _loopback_host(host: str) -> bool:
    name = urlsplit(f"//{host}").hostname or ""
    return name == "localhost" or is_loopback(name)
