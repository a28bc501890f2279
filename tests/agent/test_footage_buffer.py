"""The agent's rolling buffer against a real RTSP camera (camsim): original bytes in segments
cut at keyframes, hashed at capture and indexed; eviction by the hours limit (a test clock),
never of a held range; eviction by the size limit; a full disk stops buffering with an alert
and keeps what was written."""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from agent.buffer import INDEX_FILE, BufferedCamera, BufferOptions, RollingBuffer
from recording.segments import hash_file, iter_frames
from recording.store import SegmentRow
from rtcc.bitstream import is_keyframe
from rtcc.config import IngestConfig
from tests.agent.harness import wait_for
from tests.fixtures.auth import FakeClock
from tests.fixtures.camsim import CamsimHandle

pytestmark = pytest.mark.slow

CAMERA = "a0000001-0123456789"


def _closed(buffer: RollingBuffer) -> list[SegmentRow]:
    return [row for row in buffer.store.recent_segments(CAMERA, 100) if row.state != "open"][::-1]


async def test_buffer_hashes_at_capture_and_evicts_by_age_size_and_disk(
    tmp_path: Path, camsim: CamsimHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agent.buffer")
    clock = FakeClock()
    options = BufferOptions(directory=tmp_path / "buffer", hours=1.0, segment_seconds=1.0,
                            min_free_bytes=0, upkeep_interval=3600.0)
    buffer = RollingBuffer(options, IngestConfig(), clock=clock)
    await buffer.open()
    try:
        assert (tmp_path / "buffer" / INDEX_FILE).exists()
        assert (tmp_path / "buffer").stat().st_mode & 0o077 == 0
        await buffer.follow({CAMERA: BufferedCamera("rtsp:camsim/open", camsim.target("open"))})
        rows = await wait_for(lambda: (found := _closed(buffer)) and len(found) >= 5 and found,
                              30, "five closed segments")

        # Each segment: whole frames from a keyframe, its bytes hashing to what was recorded
        # while writing, pts and UTC ranges moving forward.
        for row in rows:
            path = buffer.path_of(row)
            sha, size = hash_file(path)
            assert (sha, size) == (row.sha256, row.bytes)
            frames = buffer.frames_of(row)
            assert len(frames) == row.frames > 0
            assert frames[0].keyframe
            first = next(iter_frames(path, frames[:1]))
            assert is_keyframe(first)
            assert row.pts_start is not None
            assert row.pts_end is not None
            assert row.pts_start <= row.pts_end
            assert row.utc_end is not None
            assert row.utc_start <= row.utc_end
        for earlier, later in itertools.pairwise(rows):
            assert earlier.utc_end is not None
            assert earlier.utc_end < later.utc_start

        # The hours limit: everything that ended before the cut goes, except a held range.
        hold = buffer.hold(CAMERA, rows[1].utc_start, rows[1].utc_end or rows[1].utc_start,
                           "2024-7", "footage request fr-test")
        end2 = rows[2].utc_end
        assert end2 is not None
        clock.now = end2 + 3600.0 + 0.001
        assert await buffer.evict() == 2
        left = {row.id for row in _closed(buffer)}
        assert rows[0].id not in left
        assert rows[2].id not in left
        assert rows[1].id in left
        assert rows[3].id in left
        assert not buffer.path_of(rows[0]).exists()
        assert not buffer.path_of(rows[2]).exists()
        assert buffer.path_of(rows[1]).exists()
        buffer.release(hold)
        assert await buffer.evict() == 1
        assert rows[1].id not in {row.id for row in _closed(buffer)}

        # The size limit: oldest first until the rest fits.
        clock.now = end2  # nothing is old enough now
        kept = _closed(buffer)
        limit = sum(row.bytes for row in kept[-2:])
        buffer.options = replace(buffer.options, max_bytes=limit)
        evicted = await buffer.evict()
        assert evicted >= len(kept) - 2
        after = _closed(buffer)
        assert sum(row.bytes for row in after) <= limit
        assert after
        assert after[0].utc_start >= kept[-2].utc_start
        buffer.options = replace(buffer.options, max_bytes=0)

        # A full disk: buffering stops with an alert; what was written stays, hashes intact.
        before = _closed(buffer)
        buffer.min_free_bytes = 2**62
        await wait_for(lambda: buffer.alerts, 15, "the disk-full alert")
        await asyncio.sleep(0.5)
        assert "ALERT buffering stopped (disk_full)" in caplog.text
        for row in before:
            assert hash_file(buffer.path_of(row)) == (row.sha256, row.bytes)
        stopped = len(_closed(buffer))
        assert buffer.store.open_segments() == []
        await asyncio.sleep(1.5)
        assert len(_closed(buffer)) == stopped  # nothing more is written
    finally:
        await buffer.aclose()
