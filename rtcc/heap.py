"""The heap of a long-running media server: the garbage collector's settings, and freed memory
handed back to the operating system.

A relay with hundreds of peer connections holds about 150,000 objects that the cyclic collector
tracks (aiortc's and aioice's transports, mostly); with CPython's default thresholds it walks
them often enough to cost several per cent of the process's CPU. Objects made while starting
(modules, routes, configuration) live as long as the process: ``settle_after_start`` moves them
out of the collector's sight and collects young objects less often. Reference counting still
frees everything that is not in a cycle at once; cycles are still found, later.

``release_periodically`` hands memory that was freed back to the system every few minutes, so a
server that was busy returns near its idle size once the viewers have gone.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc

YOUNG_THRESHOLD = 20_000
"""Allocations between two young collections (CPython's default is 700)."""


def settle_after_start() -> None:
    """Collect once, freeze what survived the start, and collect young objects less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


RELEASE_INTERVAL = 300.0
"""Seconds between two hand-backs of freed heap memory to the operating system."""


def release_free_memory() -> bool:
    """Hand the heap's free pages back to the operating system; False where it cannot.

    After a busy hour (hundreds of peer connections opened and closed) glibc's malloc keeps the
    freed memory mapped: every object is gone, yet the resident size stays at the peak.
    ``malloc_trim`` returns those pages. It takes malloc's lock for a moment: call it on a
    thread, never on the loop that sends video."""
    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False  # not glibc: nothing to do
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))


async def release_periodically(interval: float = RELEASE_INTERVAL) -> None:
    """Hand freed memory back every ``interval`` seconds, on a thread (for a TaskSupervisor)."""
    while True:
        await asyncio.sleep(interval)
        await asyncio.to_thread(release_free_memory)
