"""A full disk (simulated with a free-space floor above the free space) stops recording with an
alert in the log, the audit log and the stats; every segment already written stays intact."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path

import pytest

from evidence.manager import RecordingManager
from evidence.store import AsyncEvidenceStore
from ingest.rtsp import RtspSource
from recording.recorder import RecorderSettings, RecorderState
from recording.segments import contained, hash_file, read_index
from rtcc.hub import StreamHub, StreamSettings
from security.audit import AuditLog
from security.store import SecurityStore
from tests.fixtures.camsim import CamsimHandle
from tests.ingest.helpers import FAST, wait_until


async def test_full_disk_stops_recording_with_an_alert_and_keeps_what_was_written(
    camsim: CamsimHandle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    data_dir = tmp_path / "data"
    security = await SecurityStore.open_in(data_dir)
    db = await AsyncEvidenceStore.open_in(data_dir)
    store = db.tables
    root = data_dir / "evidence"
    audit = AuditLog(security, time.time)
    try:
        async with StreamHub() as hub:
            stream = hub.register("cam1", "main",
                                  lambda: RtspSource("cam1/main", camsim.target("open"), FAST),
                                  StreamSettings(close_after=0))
            manager = RecordingManager(
                hub=hub, store=db, root=root, audit=audit, record_cameras={"cam1": "test"},
                retention_days={}, default_retention_days=30,
                recorder_settings=RecorderSettings(segment_seconds=1.0, min_free_bytes=0),
                reconcile_interval=0.5)
            await manager.start()
            recorder = manager.recorder("cam1")
            assert recorder is not None
            await wait_until(lambda: recorder.segments_closed >= 2, 20, "two segments")

            manager.min_free_bytes = shutil.disk_usage(root).free + 10**15
            await wait_until(lambda: recorder.state is RecorderState.DISK_FULL, 10,
                             "the recorder to stop on the full disk")
            await wait_until(lambda: not recorder.stats()["writes_queued"], 5, "writes done")
            frames_at_stop = recorder.frames_written
            await asyncio.sleep(1.5)  # several keyframes later: still nothing new
            assert recorder.frames_written == frames_at_stop
            assert stream.subscriber_count == 0  # the recorder let go of the camera

            overview = manager.stats()
            assert overview["state"] == "disk_full"
            alerts = overview["alerts"]
            assert isinstance(alerts, list)
            assert alerts[-1]["camera_id"] == "cam1"
            assert "recording stopped, nothing already recorded was lost" in alerts[-1]["reason"]
            await manager.reconcile()  # still not enough space: it stays stopped
            assert manager.recorder("cam1") is recorder
            await manager.aclose()

        rows = store.recent_segments("cam1", 100)
        assert len(rows) >= 2
        assert sum(row.frames for row in rows) == frames_at_stop
        for row in rows:
            assert row.state == "complete"  # none left open
            path = contained(root, row.path)
            assert hash_file(path) == (row.sha256, row.bytes)
            assert len(read_index(path)) == row.frames
        stops = [e for e in await audit.query(action="recording.stop") if e.outcome == "disk_full"]
        assert len(stops) == 1
        assert stops[0].camera_id == "cam1"
        assert "ALERT disk_full" in caplog.text
    finally:
        await db.aclose()
        await security.aclose()


async def test_a_recorder_whose_stream_is_closed_stops_when_no_longer_wanted(
    camsim: CamsimHandle, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    security = await SecurityStore.open_in(data_dir)
    db = await AsyncEvidenceStore.open_in(data_dir)
    store = db.tables
    audit = AuditLog(security, time.time)
    try:
        async with StreamHub() as hub:
            hub.register("cam1", "main",
                         lambda: RtspSource("cam1/main", camsim.target("open"), FAST),
                         StreamSettings(close_after=0))
            manager = RecordingManager(
                hub=hub, store=db, root=data_dir / "evidence", audit=audit,
                record_cameras={}, retention_days={}, default_retention_days=30,
                recorder_settings=RecorderSettings(segment_seconds=1.0, min_free_bytes=0),
                reconcile_interval=600)  # only the recorder's own check can stop it in time
            manager.watch("cam1", "watched for incident 7")
            await manager.start()
            recorder = manager.recorder("cam1")
            assert recorder is not None
            await wait_until(lambda: recorder.frames_written > 15, 15, "frames recorded")
            manager.unwatch("cam1")
            assert hub.close_camera_sessions("cam1", "consent revoked") >= 1
            await wait_until(lambda: not recorder.running, 5, "the recorder to stop")
            assert recorder.state is RecorderState.STOPPED
            frames = recorder.frames_written
            await asyncio.sleep(1.5)
            assert recorder.frames_written == frames
            manager.watch("cam1", "watched again")
            await manager.reconcile()
            again = manager.recorder("cam1")
            assert again is not None
            assert again is not recorder
            await wait_until(lambda: again.frames_written > 0, 15, "recording again")
            await manager.aclose()
        rows = store.recent_segments("cam1", 100)
        assert all(row.state == "complete" for row in rows)
        assert sum(row.frames for row in rows) == frames + again.frames_written
        starts = await audit.query(action="recording.start")
        assert [e.details for e in starts][-1] == (
            '{"profile":"main","reason":"watched for incident 7"}')
    finally:
        await db.aclose()
        await security.aclose()
