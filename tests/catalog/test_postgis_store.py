"""What only the PostGIS catalog promises: its queries use its indexes, large imports are atomic,
the catalog follows ``database.url`` when ``store`` is empty, it survives an outage, and its
events reach every node through NOTIFY."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from catalog import catalog_context
from catalog.errors import ImportConflict
from catalog.events import Broadcaster, PgBus
from catalog.geo import Circle, circle_boxes, destination
from catalog.keys import CATALOG_STORE
from catalog.model import Camera, CameraStatus
from catalog.postgis_store import PostgisCatalog, covering_sql, nearest_sql, region_sql
from catalog.query import Filters
from catalog.store import STORE_ERRORS
from rtcc.appkeys import SETTINGS
from rtcc.config import DatabaseConfig, Settings
from rtcc.db import Database
from tests.fixtures.postgres import PostgresServer, start_postgres

CENTER = (40.0, -89.0)


def _cameras(count: int, seed: int = 3) -> list[Camera]:
    rng = random.Random(seed)
    return [Camera(id=f"p{i:05d}", name=f"Camera {i}", lat=CENTER[0] + rng.uniform(-0.2, 0.2),
                   lon=CENTER[1] + rng.uniform(-0.2, 0.2), heading=rng.uniform(0, 360),
                   fov=90.0, range_m=100.0) for i in range(count)]


def _database(url: str, tmp_path: Path) -> Database:
    return Database(DatabaseConfig(url=SecretStr(url), migrate_on_start=True), tmp_path)


def _plan(database: Database, sql: str, params: list[Any]) -> str:
    conn = database.connect("catalog")
    return "\n".join(row[0] for row in conn.fetchall("EXPLAIN " + sql, params))


async def test_queries_use_the_spatial_indexes(postgres_server: PostgresServer,
                                               tmp_path: Path) -> None:
    name = postgres_server.new_database()
    database = _database(postgres_server.url(name), tmp_path)
    store = await PostgisCatalog.open(database)
    try:
        await store.import_cameras(_cameras(6000))
        postgres_server.psql("ANALYZE catalog.cameras", name)
        lat, lon = CENTER
        knn = nearest_sql(lat, lon, 20, 50_000, Filters())
        plans = {
            "cameras_geog": [knn, region_sql(circle_boxes(lat, lon, 500),
                                             [Circle(lat, lon, 500)], Filters())],
            "cameras_geom": [region_sql(circle_boxes(lat, lon, 500),
                                        [Circle(lat, lon, 50_000)], Filters())],
            "cameras_cone": [covering_sql(lat, lon, Filters())],
        }
        for index, queries in plans.items():
            for sql, params in queries:
                plan = await asyncio.to_thread(_plan, database, sql, params)
                assert index in plan, plan
                assert "Seq Scan" not in plan, plan
                assert "JIT" not in plan, plan
        assert "Order By: (geog <->" in await asyncio.to_thread(_plan, database, *knn)
    finally:
        await store.aclose()
        await asyncio.to_thread(database.close)


async def test_a_bulk_import_of_several_statements_is_all_or_nothing(
        postgres_url: str, tmp_path: Path) -> None:
    store = await PostgisCatalog.open(_database(postgres_url, tmp_path), owns_database=True)
    try:
        cameras = _cameras(12_000)
        await store.import_cameras(cameras[:11_000])
        assert await store.count() == 11_000
        with pytest.raises(ImportConflict) as conflict:
            await store.import_cameras(cameras[10_999:])
        assert conflict.value.camera_ids == ["p10999"]
        assert await store.count() == 11_000
        assert await store.put(cameras[11_500]) is False
        moved = destination(cameras[0].lat, cameras[0].lon, 0.0, 5000.0)
        assert await store.import_cameras(
            [Camera(id="p00000", name="moved", lat=moved[0], lon=moved[1])], "upsert") == 1
        found = await store.within_radius(*moved, 10.0)
        assert [hit.camera.id for hit in found.hits] == ["p00000"]
        assert await store.count() == 11_001
        await store.set_status("p10000", CameraStatus.LIVE, 7.0)
        renamed = [replace(c, name=f"renamed {c.id}") for c in cameras[10_000:]]
        assert await store.import_cameras(renamed, "upsert") == 2000  # a scratch table
        assert await store.count() == 12_000
        kept = await store.get("p10000")
        assert kept is not None
        assert (kept.name, kept.status, kept.last_frame_time) == (
            "renamed p10000", CameraStatus.LIVE, 7.0)
    finally:
        await store.aclose()


async def _opened_engine(settings: Settings) -> str:
    app = web.Application()
    app[SETTINGS] = settings
    async with contextlib.asynccontextmanager(catalog_context)(app):
        return app[CATALOG_STORE].engine


async def test_the_catalog_follows_the_database(postgres_url: str, tmp_path: Path) -> None:
    database = DatabaseConfig(url=SecretStr(postgres_url), migrate_on_start=True)
    follows = Settings(data_dir=tmp_path, database=database)
    assert follows.store == ""
    assert await _opened_engine(follows) == "postgis"
    assert await _opened_engine(Settings(data_dir=tmp_path, store=postgres_url,
                                         database=database)) == "postgis"
    embedded = Settings(data_dir=tmp_path)
    assert embedded.store == f"sqlite:///{tmp_path / 'rtcc.sqlite3'}"
    assert await _opened_engine(embedded) == "sqlite"


async def test_an_outage_is_a_store_error_and_the_catalog_recovers(tmp_path: Path) -> None:
    """PostgreSQL goes away: catalog calls fail with a store error (503 in the API); it comes
    back on the same port: the same store answers again without being reopened."""
    server = await asyncio.to_thread(start_postgres)
    try:
        database = _database(server.url(server.new_database()), tmp_path)
        store = await PostgisCatalog.open(database, owns_database=True)
        try:
            await store.import_cameras(_cameras(50))
            # Searches keep their connection between calls: the outage cuts it.
            assert len((await store.nearest(*CENTER, limit=5)).hits) == 5
            await asyncio.to_thread(server.stop)
            with pytest.raises(STORE_ERRORS):
                await store.nearest(*CENTER, limit=5)
            with pytest.raises(STORE_ERRORS):
                await store.put(Camera(id="during", name="during", lat=1.0, lon=1.0))
            server = await asyncio.to_thread(server.restart)
            deadline = time.monotonic() + 60
            while True:  # the pool reconnects with its own backoff
                try:
                    assert len((await store.nearest(*CENTER, limit=5)).hits) == 5
                    break
                except STORE_ERRORS:
                    assert time.monotonic() < deadline, "no reconnection within 60 s"
                    await asyncio.sleep(0.2)
            assert await store.count() == 50
        finally:
            await store.aclose()
    finally:
        await asyncio.to_thread(server.remove)


async def test_events_reach_other_nodes_and_resync_after_an_outage() -> None:
    """Two nodes' buses on one database: an event published on one reaches the other's
    consoles; after PostgreSQL comes back, consoles are told to re-read (their feed ends) and
    events flow again."""
    server = await asyncio.to_thread(start_postgres)
    try:
        url = server.url(server.new_database())
        here, there = Broadcaster(), Broadcaster()
        async with PgBus(url, "test_events", here, 3.0) as bus, \
                PgBus(url, "test_events", there, 3.0):
            feed = there.subscribe()
            await bus.publish({"type": "camera.updated", "id": "a"})
            assert json.loads(await feed.next(10.0) or "null")["id"] == "a"

            await asyncio.to_thread(server.stop)
            await bus.publish({"type": "camera.updated", "id": "b"})  # local only
            mine = here.subscribe()
            await bus.publish({"type": "camera.updated", "id": "c"})
            assert json.loads(await mine.next(10.0) or "null")["id"] == "c"
            server = await asyncio.to_thread(server.restart)
            assert await feed.next(60.0) is None  # the listener is back: re-read
            assert there.resyncs >= 1
            deadline = time.monotonic() + 60
            while True:
                again = there.subscribe()
                await bus.publish({"type": "camera.updated", "id": "d"})
                try:
                    assert json.loads(await again.next(2.0) or "null")["id"] == "d"
                    break
                except TimeoutError:
                    assert time.monotonic() < deadline, "events did not flow again in 60 s"
                    there.unsubscribe(again)
    finally:
        await asyncio.to_thread(server.remove)
