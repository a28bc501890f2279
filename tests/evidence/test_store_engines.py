"""The evidence store's tables on SQLite and on PostgreSQL: segments, holds, exports, footage
requests and policies read back what was written; a file made before migrations opens unchanged."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import psycopg
import pytest
from pydantic import SecretStr

from evidence import exports
from evidence.requests import APPROVED, PENDING, FootageRequests, OwnerPolicy
from evidence.store import STORE_FILE, AsyncEvidenceStore, EvidenceStore
from recording.holds import add_hold, list_holds, release_hold
from recording.store import ClosedSegment, NewSegment
from rtcc.access import FootageApproval, FootageGrants
from rtcc.config import DatabaseConfig
from rtcc.db import Database
from rtcc.policy import Role
from rtcc.principal import Principal

INVESTIGATOR = Principal(7, "ivan", Role.INVESTIGATOR, None, "session")
OWNER = Principal(9, "olga", Role.OWNER, "owner-1", "session")


@pytest.fixture
def database(database_url: str, tmp_path: Path) -> Iterator[Database]:
    db = Database(DatabaseConfig(url=SecretStr(database_url), connect_timeout=5,
                                       migrate_on_start=True), tmp_path)
    yield db
    db.close()


@pytest.fixture
def store(database: Database) -> Iterator[EvidenceStore]:
    opened = EvidenceStore.open_on(database)
    yield opened
    opened.close()


def _closed(path: str, start: float, end: float) -> ClosedSegment:
    return ClosedSegment(pts_start=0, pts_end=90_000 * 2**20, utc_start=start, utc_end=end,
                         bytes=2**33, frames=25, sha256="a" * 64, index_sha256="b" * 64,
                         path=path)


def test_segments_keep_large_numbers_and_refuse_changes_once_closed(
        store: EvidenceStore) -> None:
    first = store.open_segment(NewSegment("cam1", "main", "server", "recordings/1.h264", "h264",
                                          1_700_000_000.25, 0, True), 1.0)
    second = store.add_closed_segment(
        NewSegment("cam1", "main", "agent", "uploads/2.h264", "h264", 1_700_000_010.0, 0, False,
                   request_id="fr-1"), _closed("uploads/2.h264", 1_700_000_010.0,
                                               1_700_000_012.0), 2.0)
    assert second > first
    assert [row.id for row in store.open_segments()] == [first]
    row = store.segment(second)
    assert row is not None
    assert (row.bytes, row.pts_end, row.request_id) == (2**33, 90_000 * 2**20, "fr-1")
    assert row.utc_start == 1_700_000_010.0
    opened = store.segment(first)
    assert opened is not None
    assert opened.discontinuity
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.RaiseException),
                       match="closed segment cannot be changed"):
        store.execute("UPDATE segments SET sha256 = 'x' WHERE id = ?", (second,))
    store.close_segment(first, _closed("recordings/1.h264", 1_700_000_000.25,
                                       1_700_000_001.0), 3.0)
    assert store.open_segments() == []
    assert [r.id for r in store.segments_between("cam1", 1_699_999_999.0, 1_700_000_011.0)] \
        == [first, second]
    assert store.cameras_with_segments() == ["cam1"]


def test_holds_keep_segments_from_eviction_until_released(store: EvidenceStore) -> None:
    segment_id = store.add_closed_segment(
        NewSegment("cam1", "main", "server", "recordings/h.h264", "h264", 100.0, 0, False),
        _closed("recordings/h.h264", 100.0, 110.0), 1.0)
    hold = add_hold(store, camera_id="cam1", case_number="2024-7", start=105.0, end=106.0,
                    reason="test", created_by="ivan", now=200.0)
    assert store.is_held("cam1", 100.0, 110.0)
    assert store.evictable("cam1", 1000.0) == []
    assert [h.id for h in list_holds(store, camera_id="cam1")] == [hold.id]
    assert release_hold(store, hold.id, "ivan", 300.0)
    assert not release_hold(store, hold.id, "ivan", 301.0)
    assert list_holds(store) == []
    assert [h.released_at for h in list_holds(store, active_only=False)] == [300.0]
    assert [row.id for row in store.evictable("cam1", 1000.0)] == [segment_id]
    store.delete_segment(segment_id)
    assert store.segment(segment_id) is None


def test_exports_are_found_by_token_and_counted(store: EvidenceStore) -> None:
    token = exports.register(
        store, export_id="exp-1", file_name="exp-0123456789abcdef.tar", camera_id="cam1",
        case_number="2024-7", created_by="ivan", created_by_id=7, now=10.0, expires_at=20.0,
        size=2**33, sha256="c" * 64, grant_kind="request", grant_id="fr-1:cam1",
        range_start=1.0, range_end=2.0)
    exports.count_download(store, "exp-1")
    record = exports.lookup(store, token)
    assert record is not None
    assert (record.id, record.bytes, record.downloads, record.grant_id) == (
        "exp-1", 2**33, 1, "fr-1:cam1")
    assert [r.id for r in exports.recent(store, 7)] == ["exp-1"]
    assert exports.recent(store, 8) == []
    assert exports.lookup(store, "x" * 43) is None


class _Approvals:
    """The security core's side of footage grants, kept in a list (the requests only record
    approvals; the other questions are the routes')."""

    def __init__(self) -> None:
        self.approvals: list[FootageApproval] = []

    async def record_approval(self, approval: FootageApproval) -> None:
        self.approvals.append(approval)


async def test_footage_requests_are_decided_once_and_policies_apply(
        database: Database) -> None:
    db = await AsyncEvidenceStore.open(database)
    try:
        grants = _Approvals()
        requests = FootageRequests(db, cast(FootageGrants, grants), valid_days=7)
        await requests.set_policy(OwnerPolicy("owner-2", "auto_approve", 2.0), "olga", 1.0)
        await requests.set_policy(OwnerPolicy("owner-2", "auto_approve", 1.0), "olga", 2.0)
        assert (await requests.policy("owner-2")).max_hours == 1.0
        created = await requests.create(
            "fr-1", INVESTIGATOR, [("cam1", "owner-1"), ("cam2", "owner-2")], start=100.0,
            end=1900.0, case_number="2024-7", reason="robbery", incident="", now=50.0)
        assert {item.camera_id: item.status for item in created.items} == {
            "cam1": PENDING, "cam2": APPROVED}
        items = requests.choose(created, OWNER, [])
        decided = await requests.decide(created, items, True, "olga", "ok", 60.0)
        assert [(item.camera_id, item.status) for item in decided] == [("cam1", APPROVED)]
        assert [a.camera_id for a in grants.approvals] == ["cam2", "cam1"]
        assert [r.id for r in await requests.list_for(OWNER)] == ["fr-1"]
        assert [r.id for r in await requests.list_for(INVESTIGATOR)] == ["fr-1"]
        assert await requests.mark_failed("fr-1", "cam1", "no footage")
        again = await requests.get("fr-1")
        assert again is not None
        assert {item.camera_id: item.failure for item in again.items}["cam1"] == "no footage"
        assert len(await db.call(list_holds, camera_id="cam1")) == 1
    finally:
        await db.aclose()


def test_a_file_made_before_migrations_opens_with_its_rows(tmp_path: Path) -> None:
    """An evidence file of an older release (no ledger, no columns added since) keeps its
    rows and gains the newer columns."""
    conn = sqlite3.connect(tmp_path / STORE_FILE)
    conn.executescript("""
        CREATE TABLE segments (id INTEGER PRIMARY KEY AUTOINCREMENT, camera_id TEXT NOT NULL,
            profile TEXT NOT NULL DEFAULT 'main', origin TEXT NOT NULL, request_id TEXT,
            path TEXT NOT NULL UNIQUE, codec TEXT NOT NULL, state TEXT NOT NULL,
            pts_start INTEGER, pts_end INTEGER, utc_start REAL NOT NULL, utc_end REAL,
            bytes INTEGER NOT NULL DEFAULT 0, frames INTEGER NOT NULL DEFAULT 0, sha256 TEXT,
            index_sha256 TEXT, discontinuity INTEGER NOT NULL DEFAULT 0,
            note TEXT NOT NULL DEFAULT '', created REAL NOT NULL, closed REAL);
        CREATE TABLE exports (id TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE,
            file_name TEXT NOT NULL, camera_id TEXT NOT NULL, case_number TEXT NOT NULL,
            created_by TEXT NOT NULL, created_by_id INTEGER, created_at REAL NOT NULL,
            expires_at REAL NOT NULL, bytes INTEGER NOT NULL, sha256 TEXT NOT NULL,
            downloads INTEGER NOT NULL DEFAULT 0);
        INSERT INTO segments (camera_id, origin, path, codec, state, utc_start, utc_end,
            created) VALUES ('cam1', 'server', 'recordings/old.h264', 'h264', 'complete',
            5.0, 6.0, 5.0);
        INSERT INTO exports VALUES ('exp-old', 'hash', 'exp-0123456789abcdef.tar', 'cam1',
            '2023-1', 'ivan', 7, 1.0, 2.0, 100, 'd', 3);
        PRAGMA user_version=1;
    """)
    conn.close()
    store = EvidenceStore.open_in(tmp_path)
    try:
        assert [row.path for row in store.recent_segments("cam1", 10)] == ["recordings/old.h264"]
        (old,) = exports.recent(store, 7)
        assert (old.id, old.downloads, old.grant_kind, old.range_start) == ("exp-old", 3, "",
                                                                             None)
        assert store.segment(2) is None
        new_id = store.open_segment(NewSegment("cam1", "main", "server", "recordings/new.h264",
                                               "h264", 7.0, 0, False), 7.0)
        assert new_id == 2
        assert store.fetchone("SELECT COUNT(*) FROM schema_migrations")[0] == len(EvidenceStore.schema.migrations)
    finally:
        store.close()
