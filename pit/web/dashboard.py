"""The dashboard: `/` (every DAG), `/dags/<name>`, `/runs/<id>`, the login, and its assets.

Each page is one small HTML shell; `static/pit.js` draws it from the API (`pit.web.api`) and
keeps it live (polling the lists, the run's WebSocket for a run). The pages are served to whom
the API answers (`pit.web.access`): with tokens configured, a browser logs in at `/login` with
one and gets a session cookie; without, only this machine is served, and its browser gets a
session without a login. The shell carries the session's CSRF token and role for the script.

The assets are read once, when the app is made, and served with a version in their address
(cached for good by the browser) and a strict Content-Security-Policy: scripts and styles only
from this server, never inline.
"""

from __future__ import annotations

import hashlib
import html
from pathlib import Path
from urllib.parse import quote

import attrs
import trio
from quart import Response, redirect, request
from quart.typing import ResponseReturnValue
from quart_trio import QuartTrio
from werkzeug.wrappers.response import Response as WerkzeugResponse

from pit.messages.web import WebHandle
from pit.web.access import (
    COOKIE,
    LIFETIME,
    LOCAL,
    LOCAL_ONLY,
    Session,
    Sessions,
    cross_site,
    local,
    login_role,
)

STATIC = Path(__file__).with_name("static")
ASSETS = {"pit.js": "text/javascript", "pit.css": "text/css"}
FAILED_LOGIN_WAIT = 0.5
"""Seconds a wrong token waits for its answer: guessing stays slow."""

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: with it a browser sends `Origin: null` on a form POST, which `cross_site`
    # must refuse.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@attrs.frozen
class Asset:
    body: bytes
    content_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    assets = {}
    for name, content_type in ASSETS.items():
        body = (STATIC / name).read_bytes()
        assets[name] = Asset(body, content_type, hashlib.sha256(body).hexdigest()[:16])
    return assets


def add_dashboard(app: QuartTrio, handle: WebHandle, sessions: Sessions) -> None:
    """The dashboard's pages on `app`; `sessions` are shared with the API."""
    assets = load_assets()
    css = assets["pit.css"].etag
    served = handle.served

    @app.get("/")
    async def overview() -> ResponseReturnValue:
        return _page("overview")

    @app.get("/dags/<name>")
    async def dag_page(name: str) -> ResponseReturnValue:
        return _page("dag")

    @app.get("/runs/<run_id>")
    async def run_page(run_id: str) -> ResponseReturnValue:
        return _page("run")

    def _page(kind: str) -> ResponseReturnValue:
        tokens = served.api
        if tokens.unreadable is not None:
            return _message(css, 503, "pit serve cannot read its API token", tokens.unreadable)
        session = sessions.get(request.cookies.get(COOKIE), tokens)
        new_session = None
        if session is None:
            if not tokens.local_only:
                return redirect(f"/login?next={_quote_path(request.full_path)}", 303)
            if not local(request):
                return _message(css, 403, "Not served here", f"{LOCAL_ONLY}.")
            new_session = sessions.open("full", LOCAL)
            session = new_session[1]
        response = _html(200, _shell(kind, session, assets, local_only=tokens.local_only))
        if new_session is not None:
            _set_cookie(response, new_session[0])
        return response

    @app.get("/login")
    async def login_form() -> ResponseReturnValue:
        if served.api.local_only:
            return redirect("/", 303)
        return _html(200, _login(css, _next_page(request.args.get("next")), None))

    @app.post("/login")
    async def login() -> ResponseReturnValue:
        tokens = served.api
        if cross_site(request):
            return _message(css, 403, "Refused", "The login came from a page of another site.")
        if tokens.local_only:
            return redirect("/", 303)
        form = await request.form
        next_page = _next_page(form.get("next"))
        role = login_role(tokens, form.get("token", "").strip())
        if role is None:
            await trio.sleep(FAILED_LOGIN_WAIT)
            return _html(401, _login(css, next_page, "That token is not the API's."))
        token = tokens.full if role == "full" else tokens.read_only
        assert token is not None
        session_id, _ = sessions.open(role, token)
        response = redirect(next_page, 303)
        _set_cookie(response, session_id)
        return response

    @app.post("/logout")
    async def logout() -> ResponseReturnValue:
        session_id = request.cookies.get(COOKIE)
        session = sessions.get(session_id, served.api)
        form = await request.form
        if cross_site(request) or session is None or form.get("csrf") != session.csrf:
            return _message(css, 403, "Refused", "Log out from the dashboard's own button.")
        sessions.close(session_id)
        response = redirect("/" if served.api.local_only else "/login", 303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="Strict")
        return response

    @app.get("/static/<name>")
    async def static(name: str) -> ResponseReturnValue:
        asset = assets.get(name)
        if asset is None:
            return _message(css, 404, "Not found", f"No asset {name!r}.")
        response = Response(asset.body, content_type=f"{asset.content_type}; charset=utf-8")
        response.headers["ETag"] = f'"{asset.etag}"'
        response.headers["X-Content-Type-Options"] = "nosniff"
        versioned = request.args.get("v") == asset.etag
        response.headers["Cache-Control"] = (
            "public, max-age=31536000, immutable" if versioned else "no-cache"
        )
        if request.headers.get("If-None-Match") == f'"{asset.etag}"':
            return Response(b"", status=304, headers=dict(response.headers))
        return response


def _set_cookie(response: Response | WerkzeugResponse, session_id: str) -> None:
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(LIFETIME),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.scheme == "https",
    )


def _next_page(asked: str | None) -> str:
    """Where to go after the login: a path of this server only (never `//host` or a URL)."""
    if not asked or not asked.startswith("/") or asked.startswith("//") or "\\" in asked:
        return "/"
    return asked


def _quote_path(path: str) -> str:
    return quote(path.rstrip("?"), safe="/")


def _html(status: int, body: str) -> Response:
    return Response(
        body, status=status, content_type="text/html; charset=utf-8", headers=SECURITY_HEADERS
    )


def _head(title: str, css: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        f"<title>{html.escape(title)}</title>"
        '<link rel="icon" href="data:,">'
        f'<link rel="stylesheet" href="/static/pit.css?v={css}">'
    )


def _shell(kind: str, session: Session, assets: dict[str, Asset], *, local_only: bool) -> str:
    logout = (
        ""
        if local_only
        else '<form method="post" action="/logout" class="logout">'
        f'<input type="hidden" name="csrf" value="{html.escape(session.csrf)}">'
        '<button type="submit">Log out</button></form>'
    )
    return (
        _head("pit", assets["pit.css"].etag)
        + f'<meta name="pit-csrf" content="{html.escape(session.csrf)}">'
        + f'<meta name="pit-role" content="{session.role}">'
        + f'<script type="module" src="/static/pit.js?v={assets["pit.js"].etag}"></script>'
        + f'</head><body data-page="{kind}">'
        + '<a class="skip" href="#main">Skip to content</a>'
        + '<header class="top"><nav aria-label="pit"><a class="brand" href="/">pit</a>'
        + '<a href="/">DAGs</a></nav>'
        + ('<span class="role">read-only</span>' if session.role == "read" else "")
        + logout
        + '</header><main id="main" tabindex="-1"><p class="loading">Loading…</p></main>'
        + '<div id="live" class="visually-hidden" aria-live="polite"></div>'
        + "</body></html>"
    )


def _login(css: str, next_page: str, problem: str | None) -> str:
    said = f'<p class="problem" role="alert">{html.escape(problem)}</p>' if problem else ""
    return (
        _head("Log in · pit", css)
        + '</head><body><main id="main" class="login"><h1>pit</h1>'
        + '<form method="post" action="/login">'
        + said
        + '<label for="token">API token</label>'
        + '<input id="token" name="token" type="password" autocomplete="current-password" '
        + "required autofocus>"
        + f'<input type="hidden" name="next" value="{html.escape(next_page)}">'
        + '<button type="submit">Log in</button>'
        + '<p class="hint">The value of the secret that <code>api_token</code> (or '
        + "<code>api_read_token</code>, to read only) names in pit_config.toml.</p>"
        + "</form></main></body></html>"
    )


def _message(css: str, status: int, title: str, detail: str) -> Response:
    return _html(
        status,
        _head(f"{title} · pit", css)
        + f'</head><body><main id="main" class="login"><h1>{html.escape(title)}</h1>'
        + f"<p>{html.escape(detail)}</p></main></body></html>",
    )
