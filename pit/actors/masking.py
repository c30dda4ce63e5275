"""Secret values masked in task output, across chunk and line boundaries.

Pure: fed bytes, gives bytes. The values are what `Secrets.values` calls sensitive. A value is
replaced by `***` wherever it appears whole. Only the end of a chunk that could begin a value
(the longest suffix that is a prefix of one) is held back until the next chunk (or the end)
shows whether the value continues there: a line of output that cannot be the start of a secret
is released at once, so `pit logs -f` and the API's live logs see it as it comes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = b"***"
MIN_LENGTH = 4
"""Shorter values (`true`, a port) would mask ordinary output."""


class Masker:
    def __init__(self, values: Iterable[str]) -> None:
        self._secrets: set[bytes] = set()
        self._pending = b""
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        """Mask these values too, from the output fed next on (what is held back included)."""
        self._secrets.update(v.encode() for v in values if len(v) >= MIN_LENGTH)
        secrets = sorted(self._secrets, key=len, reverse=True)
        self._pattern = re.compile(b"|".join(re.escape(s) for s in secrets)) if secrets else None
        self._hold = max((len(s) for s in secrets), default=1) - 1
        self._beginnings = {s[:length] for s in secrets for length in range(1, len(s))}
        """Every proper prefix of a value: how a value cut by a chunk's end may look."""

    @property
    def active(self) -> bool:
        return self._pattern is not None

    def feed(self, chunk: bytes) -> bytes:
        """The masked output that is safe to release now."""
        if self._pattern is None:
            return chunk
        data = self._pending + chunk
        cut = len(data) - self._held(data)
        out, position = [], 0
        for match in self._pattern.finditer(data):
            if match.start() >= cut:
                break  # might be the start of a longer value: decide with the next chunk
            out += [data[position : match.start()], MASK]
            position = match.end()
        release = max(cut, position)
        out.append(data[position:release])
        self._pending = data[release:]
        return b"".join(out)

    def _held(self, data: bytes) -> int:
        """How many bytes at the end of `data` could be the start of a value."""
        for length in range(min(self._hold, len(data)), 0, -1):
            if data[-length:] in self._beginnings:
                return length
        return 0

    def mask(self, text: str) -> str:
        """A whole message masked at once (an error pit reports), not a stream."""
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text.encode(errors="surrogatepass")).decode(
            errors="surrogatepass"
        )

    def flush(self) -> bytes:
        """Whatever was held back, masked: at the end of the output."""
        data, self._pending = self._pending, b""
        return self._pattern.sub(MASK, data) if self._pattern is not None else data
