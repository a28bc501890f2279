"""Segment files: a failed write keeps whole frames, a crash is recovered, paths stay inside,
retention spares held evidence, closed segments cannot be changed."""

from __future__ import annotations

import contextlib
import resource
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr

from evidence.manager import RecordingManager
from evidence.store import AsyncEvidenceStore, EvidenceStore
from recording.holds import add_hold
from recording.recorder import RecorderSettings
from recording.segments import (
    SegmentFile,
    SegmentWriteError,
    UnsafePath,
    contained,
    hash_file,
    read_index,
    recover_part,
    segment_name,
)
from recording.store import NewSegment
from rtcc.config import DatabaseConfig
from rtcc.db import Database
from rtcc.hub import StreamHub
from security.audit import AuditLog
from security.store import SecurityStore
from tests.evidence.helpers import frames_from, make_h264, write_segments


@pytest.fixture
def units(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[bytes, bool]]:
    return make_h264(tmp_path_factory.getbasetemp(), 4.0)


@pytest.fixture
def database(database_url: str, tmp_path: Path) -> Iterator[Database]:
    """The evidence store's engine: SQLite in ``tmp_path``, or a fresh PostgreSQL database."""
    db = Database(DatabaseConfig(url=SecretStr(database_url), connect_timeout=5,
                                 migrate_on_start=True), tmp_path)
    yield db
    db.close()


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes past ``limit`` bytes fail with EFBIG, as they would with ENOSPC on a full disk."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_a_write_that_fails_keeps_every_whole_frame(
    tmp_path: Path, units: list[tuple[bytes, bool]]
) -> None:
    frames = frames_from(units, time.time())
    segment = SegmentFile(tmp_path, segment_name("cam1", "h264", frames[0].capture_time))
    segment.write(frames[:10])
    kept = segment.size
    with file_size_limit(kept + 100), pytest.raises(SegmentWriteError):
        segment.write(frames[10:20])
    closed = segment.close("cut short")
    path = contained(tmp_path, closed.path)
    assert closed.frames == 10
    assert hash_file(path) == (closed.sha256, kept)
    assert path.read_bytes() == b"".join(f.data for f in frames[:10])
    assert len(read_index(path)) == 10


def test_a_segment_left_open_by_a_crash_is_recovered_to_its_last_whole_frame(
    tmp_path: Path, units: list[tuple[bytes, bool]]
) -> None:
    frames = frames_from(units, time.time())
    relative = segment_name("cam1", "h264", frames[0].capture_time)
    segment = SegmentFile(tmp_path, relative)
    segment.write(frames[:20])
    # The process dies here; half a frame more had reached the disk.
    with open(segment.data_path, "ab") as handle:
        handle.write(frames[20].data[: len(frames[20].data) // 2])
    closed = recover_part(tmp_path, relative)
    assert closed is not None
    assert closed.state == "recovered"
    assert closed.frames == 20
    assert "bytes of an incomplete last frame were dropped" in closed.note
    path = contained(tmp_path, relative)
    assert path.read_bytes() == b"".join(f.data for f in frames[:20])
    assert hash_file(path)[0] == closed.sha256


@pytest.mark.parametrize("relative", [
    "../outside.h264", "recordings/../../outside.h264", "/etc/passwd", "", "a/\x00/b",
])
def test_paths_outside_the_evidence_folder_are_refused(tmp_path: Path, relative: str) -> None:
    with pytest.raises(UnsafePath):
        contained(tmp_path / "evidence", relative)


def test_a_symbolic_link_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    (root / "exports").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("secret")
    (root / "exports" / "link.tar").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(UnsafePath):
        contained(root, "exports/link.tar")


def test_a_closed_segment_row_cannot_be_changed(tmp_path: Path, database: Database,
                                                units: list[tuple[bytes, bool]]) -> None:
    store = EvidenceStore.open_on(database)
    try:
        (segment_id,) = write_segments(store, tmp_path / "evidence", "cam1",
                                       frames_from(units[:15], time.time()), 60)
        with pytest.raises((sqlite3.IntegrityError, psycopg.errors.RaiseException),
                           match="closed segment cannot be changed"):
            store.execute("UPDATE segments SET sha256 = 'x' WHERE id = ?", (segment_id,))
    finally:
        store.close()


async def test_retention_evicts_old_segments_but_never_held_ones(
    tmp_path: Path, database: Database, units: list[tuple[bytes, bool]]
) -> None:
    root = tmp_path / "evidence"
    db = await AsyncEvidenceStore.open(database)
    store = db.tables
    security = await SecurityStore.open_in(tmp_path)
    now = time.time()
    old = now - 10 * 86400
    try:
        ids = write_segments(store, root, "cam1", frames_from(units, old), 1.0)
        fresh = write_segments(store, root, "cam1", frames_from(units[:15], now - 60), 60)
        held = store.segment(ids[1])
        assert held is not None
        add_hold(store, camera_id="cam1", case_number="2024-7", start=held.utc_start + 0.1,
                 end=held.utc_start + 0.2, reason="test", created_by="ivan", now=now)
        audit = AuditLog(security, time.time)
        async with StreamHub() as hub:
            manager = RecordingManager(
                hub=hub, store=db, root=root, audit=audit, record_cameras={},
                retention_days={"cam1": 7}, default_retention_days=30,
                recorder_settings=RecorderSettings())
            evicted = await manager.enforce_retention()
        assert evicted == len(ids) - 1
        remaining = {row.id for row in store.recent_segments("cam1", 100)}
        assert remaining == {ids[1], *fresh}
        assert contained(root, held.path).exists()
        entry = (await audit.query(action="evidence.evict"))[0]
        assert entry.camera_id == "cam1"
        assert str(ids[0]) in entry.details
    finally:
        await db.aclose()
        await security.aclose()


def test_new_segment_rows_start_open(database: Database) -> None:
    store = EvidenceStore.open_on(database)
    try:
        segment_id = store.open_segment(NewSegment("cam1", "main", "server", "recordings/x.h264",
                                                   "h264", 1.0, 0, False), 1.0)
        assert [row.id for row in store.open_segments()] == [segment_id]
    finally:
        store.close()
