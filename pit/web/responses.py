"""What the webhook and the API answer alike: JSON errors, bearer tokens, run requests."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Mapping
from typing import Any, assert_never

import trio
from quart.typing import ResponseReturnValue

from pit.messages.trigger import Rerun, RunRequested, SupervisorInbox
from pit.messages.webhook import RejectReason, RunAccepted, RunRejected, RunRequestAnswer
from pit.web.idempotency import IdempotencyKeys, key_problem

BUSY_RETRY_AFTER = 1
"""Seconds a 503 for a full request queue tells the caller to wait (`Retry-After`)."""

REJECTED_STATUS: dict[RejectReason, int] = {
    "overlap": 409,
    "busy": 503,
    "stopping": 503,
    "unknown": 404,
    "paused": 409,
    "invalid": 409,
    "params": 400,
    "duplicate": 409,
}


async def request_run(
    inbox: trio.MemorySendChannel[SupervisorInbox],
    dag: str,
    *,
    trigger: str,
    rerun: Rerun | None = None,
    params: Mapping[str, object] | None = None,
) -> RunRequestAnswer:
    """Ask the supervisor for a run of `dag`, as a trigger does; it answers at once, without
    waiting for the run to start. A full inbox is a busy answer, never a wait."""
    reply_send, reply = trio.open_memory_channel[RunRequestAnswer](1)
    try:
        inbox.send_nowait(
            RunRequested(
                dag=dag, trigger=trigger, rerun=rerun, params=params or {}, reply=reply_send
            )
        )
    except trio.WouldBlock:
        return RunRejected(reason="busy", message="too many requests waiting; try again")
    async with reply:
        return await reply.receive()


async def start_run(
    inbox: trio.MemorySendChannel[SupervisorInbox],
    keys: IdempotencyKeys,
    dag: str,
    *,
    trigger: str,
    params: Mapping[str, object],
    key: str | None,
    unknown: str | None = None,
) -> ResponseReturnValue:
    """Ask for a run of `dag` (a webhook, the API) and answer as `run_answer` does; with an
    `Idempotency-Key`, a repeat of an accepted request answers its run's id (200) and starts
    nothing."""

    def ask() -> Awaitable[RunRequestAnswer]:
        return request_run(inbox, dag, trigger=trigger, params=params)

    if key is None:
        return run_answer(dag, await ask(), unknown=unknown)
    if problem := key_problem(key):
        return error(400, problem)
    answer, repeat = await keys.once(dag, key, ask)
    if repeat and isinstance(answer, RunAccepted):
        return {"run_id": answer.run_id, "dag": dag}, 200, {"Idempotent-Replayed": "true"}
    return run_answer(dag, answer, unknown=unknown)


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme in any case); None when
    the header is missing, of another scheme, or has no token."""
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def same_token(presented: str, expected: str) -> bool:
    """Compare in constant time. Header values reach us decoded as latin-1 (the raw bytes), the
    expected token is text: compare the bytes a client sends for it (UTF-8)."""
    if not expected:
        return False  # an empty token is a configuration slip, never a match
    return hmac.compare_digest(presented.encode("latin-1"), expected.encode("utf-8"))


def error(
    status: int, message: str, headers: dict[str, str] | None = None
) -> tuple[dict[str, Any], int, dict[str, str]]:
    return {"error": message}, status, headers or {}


def unauthorized(message: str) -> ResponseReturnValue:
    return error(401, message, {"WWW-Authenticate": 'Bearer realm="pit"'})


def run_answer(
    dag: str, answer: RunRequestAnswer, *, unknown: str | None = None
) -> ResponseReturnValue:
    """The HTTP answer to a run requested of the supervisor (a webhook, the API): 202 with the
    run's id, or the refusal's status and message (`unknown`, when given, for an unknown DAG)."""
    match answer:
        case RunAccepted(run_id=run_id):
            return {"run_id": run_id, "dag": dag}, 202
        case RunRejected(reason=reason, message=message):
            if reason == "unknown" and unknown is not None:
                message = unknown
            headers = {"Retry-After": str(BUSY_RETRY_AFTER)} if reason == "busy" else {}
            return error(REJECTED_STATUS[reason], message, headers)
        case _:
            assert_never(answer)
