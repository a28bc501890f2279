"""Upkeep of a segment store: closing what a crash left open, deleting segments.

Both the server's recording manager and the agent's rolling buffer run these; the file work
runs in a thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from recording.segments import UnsafePath, recover_part, remove_segment_files
from recording.store import ClosedSegment, SegmentRow, SegmentStore

log = logging.getLogger(__name__)


async def recover_open_segments(store: SegmentStore, root: Path, clock: Callable[[], float]
                                ) -> list[tuple[SegmentRow, ClosedSegment]]:
    """Close the segments a crash left open (keeping every whole frame on disk) and forget the
    empty ones; returns the segments kept, as they were and as they are now."""
    kept: list[tuple[SegmentRow, ClosedSegment]] = []
    for row in store.open_segments():
        try:
            closed = await asyncio.to_thread(recover_part, root, row.path)
        except (OSError, UnsafePath) as exc:
            log.error("camera %s: segment %d could not be recovered: %s",
                      row.camera_id, row.id, exc)
            continue
        if closed is None or closed.frames == 0:
            store.delete_segment(row.id)
            with contextlib.suppress(OSError, UnsafePath):
                await asyncio.to_thread(remove_segment_files, root, row.path)
            continue
        store.close_segment(row.id, closed, clock())
        kept.append((row, closed))
    return kept


async def delete_segments(store: SegmentStore, root: Path, rows: Sequence[SegmentRow]
                          ) -> list[SegmentRow]:
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
        store.delete_segment(row.id)
        deleted.append(row)
    return deleted
