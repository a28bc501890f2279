"""Upkeep of a segment store: closing what a crash left open, deleting segments.

Both the server's recording manager and the agent's rolling buffer run these; the file work
runs in a thread, never on the event loop. The store's statements run through ``run``: the
server passes its store thread's (``rtcc.offload``), so they stay off the event loop too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol, TypeVar, TypeVarTuple

from recording.segments import UnsafePath, recover_part, remove_segment_files
from recording.store import ClosedSegment, SegmentRow, SegmentStore

log = logging.getLogger(__name__)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class StoreRunner(Protocol):
    """Runs one of the store's calls where the store is used (``OffloadedStore.run``)."""

    def __call__(self, fn: Callable[[*Ts], T], /, *args: *Ts) -> Awaitable[T]: ...


async def _in_place(fn: Callable[[*Ts], T], /, *args: *Ts) -> T:
    return fn(*args)


async def recover_open_segments(store: SegmentStore, root: Path, clock: Callable[[], float],
                                run: StoreRunner = _in_place
                                ) -> list[tuple[SegmentRow, ClosedSegment]]:
    """Close the segments a crash left open (keeping every whole frame on disk) and forget the
    empty ones; returns the segments kept, as they were and as they are now."""
    kept: list[tuple[SegmentRow, ClosedSegment]] = []
    for row in await run(store.open_segments):
        try:
            closed = await asyncio.to_thread(recover_part, root, row.path)
        except (OSError, UnsafePath) as exc:
            log.error("camera %s: segment %d could not be recovered: %s",
                      row.camera_id, row.id, exc)
            continue
        if closed is None or closed.frames == 0:
            await run(store.delete_segment, row.id)
            with contextlib.suppress(OSError, UnsafePath):
                await asyncio.to_thread(remove_segment_files, root, row.path)
            continue
        await run(store.close_segment, row.id, closed, clock())
        kept.append((row, closed))
    return kept


async def delete_segments(store: SegmentStore, root: Path, rows: Sequence[SegmentRow],
                          run: StoreRunner = _in_place) -> list[SegmentRow]:
    """Delete these segments' files, then their rows; returns the ones deleted (a file that
    cannot be removed keeps its row, and is tried again next time)."""
    deleted: list[SegmentRow] = []
    for row in rows:
        try:
            await asyncio.to_thread(remove_segment_files, root, row.path)
        except (OSError, UnsafePath) as exc:
            log.error("camera %s: segment %d could not be deleted: %s", row.camera_id, row.id,
                      exc)
            continue
        await run(store.delete_segment, row.id)
        deleted.append(row)
    return deleted
