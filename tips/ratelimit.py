"""Rate limits that never store who called.

A caller's address is turned into a bucket name with HMAC-SHA256 under a random key that lives
in memory only and is replaced, with every count, at the end of each window. Nothing is
written anywhere: once a window has passed, not even this process can tell which bucket an
address used, and a restart forgets everything. A bucket counts what one caller did in the
current window (tips sent, bytes uploaded, passphrase attempts), so a flood from one address is
refused while everyone else goes on.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable

DEFAULT_WINDOW_S = 600.0
MAX_BUCKETS = 100_000
"""Memory bound: past this many callers in one window, new callers share one overflow
bucket per action until the window ends."""


class KeyedBuckets:
    def __init__(self, clock: Callable[[], float], *, window_s: float = DEFAULT_WINDOW_S) -> None:
        self._clock = clock
        self._window_s = window_s
        self._window_end = 0.0
        self._key = b""
        self._counts: dict[tuple[str, bytes], int] = {}

    def _rotate(self) -> None:
        now = self._clock()
        if now >= self._window_end:
            self._key = secrets.token_bytes(32)
            self._counts.clear()
            self._window_end = now + self._window_s

    def _bucket(self, action: str, caller: str) -> tuple[str, bytes]:
        name = hmac.new(self._key, caller.encode("utf-8"), hashlib.sha256).digest()[:16]
        if (action, name) not in self._counts and len(self._counts) >= MAX_BUCKETS:
            return action, b"overflow"
        return action, name

    def take(self, action: str, caller: str, limit: int, cost: int = 1) -> bool:
        """Count ``cost`` against the caller's bucket for ``action``; False (nothing counted)
        when that would pass ``limit`` in this window."""
        self._rotate()
        bucket = self._bucket(action, caller)
        used = self._counts.get(bucket, 0)
        if used + cost > limit:
            return False
        self._counts[bucket] = used + cost
        return True

    def seconds_left(self) -> int:
        """Seconds until the current window ends and every bucket is empty again."""
        return max(1, int(self._window_end - self._clock()) + 1)

    def __len__(self) -> int:
        return len(self._counts)
