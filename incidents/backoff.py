"""Capped exponential backoff with jitter, for reconnecting to a CAD."""

from __future__ import annotations

import random


class Backoff:
    """``next_delay()`` grows from ``initial`` by ``factor`` up to ``cap``; each delay is drawn
    between half and all of that value, so many subscribers restarted together spread out.
    ``reset()`` after a success starts again from ``initial``."""

    def __init__(self, initial: float = 0.5, cap: float = 30.0, factor: float = 2.0,
                 rng: random.Random | None = None) -> None:
        if initial <= 0 or cap < initial or factor < 1:
            raise ValueError("backoff needs 0 < initial <= cap and factor >= 1")
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self.attempts = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.initial * self.factor ** min(self.attempts, 64))
        self.attempts += 1
        return ceiling * self._rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.attempts = 0
