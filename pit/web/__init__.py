"""pit's web side: the webhook listener of `pit serve` (quart-trio on hypercorn).

`create_app(handle)` builds the app on a `WebHandle` (`pit.messages.web`); `serve_app` serves
it inside the supervisor's nursery until a shutdown event is set. Only `pit serve` imports this
package, and only when some DAG has a `[dag.webhook]`.
"""

from __future__ import annotations

from pit.web.app import MAX_BODY, create_app
from pit.web.serve import WebError, serve_app

__all__ = ["MAX_BODY", "WebError", "create_app", "serve_app"]
