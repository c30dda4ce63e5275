"""Browser sessions (`pit.web.access.Sessions`): they expire, and end when their token changes."""

from __future__ import annotations

from pit.messages.web import ApiTokens
from pit.web.access import LIFETIME, LOCAL, MAX_SESSIONS, Sessions, login_role

TOKENS = ApiTokens(full="full-token", read_only="read-token")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_lasts_its_lifetime_then_is_gone() -> None:
    clock = Clock()
    sessions = Sessions(clock=clock)
    session_id, session = sessions.open("full", "full-token")
    assert sessions.get(session_id, TOKENS) == session
    clock.now += LIFETIME + 1
    assert sessions.get(session_id, TOKENS) is None
    clock.now -= LIFETIME + 1
    assert sessions.get(session_id, TOKENS) is None  # forgotten, not just hidden


def test_a_session_ends_when_its_token_changes_or_is_removed() -> None:
    sessions = Sessions()
    full_id, _ = sessions.open("full", "full-token")
    read_id, _ = sessions.open("read", "read-token")
    rotated = ApiTokens(full="new-token", read_only="read-token")
    assert sessions.get(full_id, rotated) is None
    assert sessions.get(read_id, rotated) is not None
    assert sessions.get(read_id, ApiTokens(full="new-token")) is None


def test_a_local_session_ends_once_a_token_is_configured() -> None:
    sessions = Sessions()
    session_id, _ = sessions.open("full", LOCAL)
    assert sessions.get(session_id, ApiTokens()) is not None
    assert sessions.get(session_id, TOKENS) is None


def test_unknown_and_closed_sessions_are_none_and_the_oldest_give_way() -> None:
    sessions = Sessions()
    assert sessions.get(None, TOKENS) is None
    assert sessions.get("made-up", TOKENS) is None
    first, _ = sessions.open("full", "full-token")
    for _ in range(MAX_SESSIONS):
        last, _ = sessions.open("full", "full-token")
    assert sessions.get(first, TOKENS) is None
    sessions.close(last)
    assert sessions.get(last, TOKENS) is None


def test_the_login_grants_the_role_of_the_token_given() -> None:
    assert login_role(TOKENS, "full-token") == "full"
    assert login_role(TOKENS, "read-token") == "read"
    assert login_role(TOKENS, "full-token ") is None
    assert login_role(ApiTokens(), "") is None
