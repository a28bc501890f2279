"""``rtcc db copy`` moves a SQLite installation's real stores to PostgreSQL: the catalog's cameras
and owners land in PostGIS and answer spatial queries, the tips, evidence and agent tables keep
every row."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from pydantic import SecretStr

from catalog.model import Camera, Owner
from catalog.postgis_store import PostgisCatalog
from catalog.sqlite_store import SqliteCatalog
from rtcc.config import DatabaseConfig
from rtcc.db import Database
from security.audit import AuditWriter, verify_chain
from security.store import SecurityTables
from server.db_commands import CopyRefused, db_copy
from server.schemas import store_schemas
from tests.fixtures.auth import FakeClock
from tips.store import TipStore


async def _fill_sqlite_installation(data_dir: Path) -> None:
    catalog = await SqliteCatalog.open(data_dir / "rtcc.sqlite3")
    try:
        await catalog.import_cameras([
            Camera(id=f"cam-{i:04d}", lat=39.79 + i * 1e-4, lon=-89.65 + i * 1e-4,
                   name=f"Camera {i}")
            for i in range(2500)])
        await catalog.put_owner(Owner(id="acme", organisation="Acme Hardware"))
    finally:
        await catalog.aclose()
    database = Database.embedded(data_dir)
    tables = SecurityTables.open(database, data_dir)
    try:
        tables.conn.execute("INSERT INTO users (username, role, created) VALUES (?, ?, ?)",
                            ("Chief.Analyst", "analyst", 1.0))
        writer = AuditWriter(tables, FakeClock())
        for n in range(30):
            writer.append(actor="chief.analyst", role="analyst", action="view.start",
                          target=f"camera:cam-{n:04d}")
    finally:
        tables.close()
    tips = TipStore(database, data_dir)
    await tips.open()
    try:
        for n in range(3):
            await tips.create_tip(created=100.0 + n, what=f"tip {n}", place="", lat=None,
                                  lon=None, happened="", contact_sealed="",
                                  passphrase_hash="$argon2id$stand-in")
    finally:
        await tips.aclose()
        database.close()


async def test_a_sqlite_installation_moves_to_postgresql(tmp_path: Path,
                                                         postgres_url: str) -> None:
    await _fill_sqlite_installation(tmp_path)
    out = io.StringIO()
    # The command runs its own event loop: off this test's loop, as on the command line.
    status = await asyncio.to_thread(db_copy, f"sqlite:///{tmp_path}", postgres_url,
                                     store_schemas(), out)
    report = out.getvalue()
    assert status == 0, report
    assert "catalog.cameras: 2500 rows (source 2500)" in report
    assert "security.audit: 30 rows (source 30)" in report
    assert "tips: 3 rows (source 3)" in report or "tips.tips: 3 rows (source 3)" in report
    target = Database(DatabaseConfig(url=SecretStr(postgres_url), migrate_on_start=False),
                      tmp_path)
    catalog = await PostgisCatalog.open(target)
    try:
        assert await catalog.count() == 2500
        nearest = await catalog.nearest(39.79, -89.65, limit=3)
        assert [hit.camera.id for hit in nearest.hits] == ["cam-0000", "cam-0001", "cam-0002"]
        assert (await catalog.get_owner("acme")) == Owner(id="acme", organisation="Acme Hardware")
        # The audit chain continues on PostgreSQL: a new entry links to the copied head.
        security = await asyncio.to_thread(SecurityTables.open, target, tmp_path)
        try:
            await asyncio.to_thread(AuditWriter(security, FakeClock()).append,
                                    actor="chief.analyst", role="analyst", action="view.end")
            result = await asyncio.to_thread(verify_chain, security)
            assert result.ok, result.describe()
            assert result.entries == 31
            login = await asyncio.to_thread(
                security.conn.fetchone, "SELECT username FROM users WHERE lower(username) = ?",
                ("chief.analyst",))
            assert login["username"] == "Chief.Analyst"
        finally:
            await asyncio.to_thread(security.close)
    finally:
        await catalog.aclose()
        target.close()
    # A second copy into the same database is refused and changes nothing.
    with pytest.raises(CopyRefused, match="already holds rows"):
        await asyncio.to_thread(db_copy, f"sqlite:///{tmp_path}", postgres_url,
                                store_schemas(), io.StringIO())
