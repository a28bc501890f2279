"""How long a source waits before reconnecting."""

from __future__ import annotations

import random


class Backoff:
    """Capped exponential backoff with jitter.

    The first ``flat`` retries wait ``initial`` (a camera that restarts is usually back within
    seconds, and viewers are waiting); after that the wait doubles up to ``maximum``. Each wait
    is shortened by up to ``jitter`` (a fraction) so many cameras behind one failed link do not
    reconnect in lockstep.
    """

    def __init__(
        self,
        initial: float,
        maximum: float,
        *,
        fatal: float | None = None,
        flat: int = 5,
        jitter: float = 0.2,
        rng: random.Random | None = None,
    ) -> None:
        if initial <= 0 or maximum <= 0:
            raise ValueError("backoff times must be positive")
        self.initial = initial
        self.maximum = max(initial, maximum)
        self.fatal = self.maximum if fatal is None else max(initial, fatal)
        self.flat = flat
        self.jitter = jitter
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self, *, fatal: bool = False) -> float:
        """The wait before the next attempt; ``fatal`` failures (a refused password) wait
        ``fatal`` seconds, so the server does not trip the camera's own lockout."""
        self.failures += 1
        if fatal:
            base = self.fatal
        else:
            exponent = max(0, self.failures - self.flat)
            base = min(self.maximum, self.initial * 2.0 ** min(exponent, 32))
        return base * (1.0 - self.jitter * self._rng.random())

    def reset(self) -> None:
        self.failures = 0
