"""The conversation between the webhook listener and the supervisor: may this DAG run now?

The web layer asks (`WebhookBackend.request_run` in `pit.web.app`); the supervisor answers at
once, without waiting for the run to start.
"""

from __future__ import annotations

from typing import Literal

import attrs


@attrs.frozen(kw_only=True)
class RunAccepted:
    """The run is queued; the supervisor starts it when it gets to it."""

    run_id: str
    """The id the run will have (its folder name under runs/), for the caller to look it up."""


RejectReason = Literal[
    "overlap", "busy", "stopping", "unknown", "paused", "invalid", "params", "duplicate"
]
"""Why a run was refused: `overlap` - the DAG has `overlap = "skip"` and a run is active;
`busy` - the supervisor's request queue is full; `stopping` - pit is shutting down;
`unknown` - no such DAG (any more: a reload removed it); `paused` - the DAG is paused, and the
run was asked for by a trigger (a schedule, an FTP watch, a webhook); `invalid` - a re-run that
cannot be made (the run has not ended, nothing failed, no snapshot kept...); `params` - the params
given do not fit the DAG's `[dag.params]` (unknown, of the wrong type, a required one missing);
`duplicate` - the fire time asked for has its run already (a run id is its fire time's)."""


@attrs.frozen(kw_only=True)
class RunRejected:
    """No run was queued; `message` says why, for the HTTP caller to read."""

    reason: RejectReason
    message: str


RunRequestAnswer = RunAccepted | RunRejected
