"""The garbage collector's settings for a long-running media server.

A relay with hundreds of peer connections holds about 150,000 objects that the cyclic collector
tracks (aiortc's and aioice's transports, mostly); with CPython's default thresholds it walks
them often enough to cost several per cent of the process's CPU. Objects made while starting
(modules, routes, configuration) live as long as the process: ``settle_after_start`` moves them
out of the collector's sight and collects young objects less often. Reference counting still
frees everything that is not in a cycle at once; cycles are still found, later.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000
"""Allocations between two young collections (CPython's default is 700)."""


def settle_after_start() -> None:
    """Collect once, freeze what survived the start, and collect young objects less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
