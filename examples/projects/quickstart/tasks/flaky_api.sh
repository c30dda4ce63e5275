#!/usr/bin/env bash
# An API that fails the first time: pit retries it (see retries in pit.toml).
set -euo pipefail
if [ "$PIT_ATTEMPT" -eq 1 ]; then
    echo "api: 503 Service Unavailable" >&2
    exit 1
fi
echo "api: 200 OK on attempt $PIT_ATTEMPT"
