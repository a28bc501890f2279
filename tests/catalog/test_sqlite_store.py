"""The SQLite engine's bulk path: a large import writes, row for row, what small writes do."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

import pytest

from catalog.errors import ImportConflict
from catalog.model import Camera
from catalog.query import Filters, Page
from catalog.sqlite_store import SqliteCatalog
from rtcc.config import SharingLevel


def _registry(count: int, seed: int) -> list[Camera]:
    rng = random.Random(seed)
    return [Camera(id=f"b{i:05d}", name=f"Camera {i}", lat=rng.uniform(-89.0, 89.0),
                   lon=rng.uniform(-180.0, 179.99), heading=rng.uniform(0, 360),
                   fov=rng.choice([40.0, 90.0, 360.0]), range_m=rng.choice([30.0, 400.0, 4000.0]))
            for i in range(count)]


def _tables(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with sqlite3.connect(path) as conn:
        cameras = conn.execute("SELECT * FROM cameras ORDER BY rid").fetchall()
        cones = conn.execute("SELECT * FROM camera_cones ORDER BY cid").fetchall()
    return cameras, cones


async def test_bulk_import_writes_the_rows_small_writes_write(tmp_path: Path) -> None:
    first = _registry(3, 1)
    cameras = _registry(9000, 2)[3:]
    bulk = await SqliteCatalog.open(tmp_path / "bulk.sqlite3")
    small = await SqliteCatalog.open(tmp_path / "small.sqlite3")
    try:
        for store in (bulk, small):
            await store.import_cameras(first)
        await bulk.import_cameras(cameras)  # one write: the pipelined path
        await bulk.import_cameras(_registry(12000, 3)[9000:], "upsert")  # new ids only
        for start in range(0, len(cameras), 1000):  # writes below the pipelined size
            await small.import_cameras(cameras[start:start + 1000])
        later = _registry(12000, 3)[9000:]
        for start in range(0, len(later), 1000):
            await small.import_cameras(later[start:start + 1000], "upsert")
    finally:
        await bulk.aclose()
        await small.aclose()
    bulk_rows, bulk_cones = _tables(tmp_path / "bulk.sqlite3")
    assert len(bulk_rows) == 3 + 8997 + 3000
    assert len(bulk_cones) >= len(bulk_rows)
    assert (bulk_rows, bulk_cones) == _tables(tmp_path / "small.sqlite3")


async def test_bulk_create_meeting_a_registered_id_writes_nothing(tmp_path: Path) -> None:
    store = await SqliteCatalog.open(tmp_path / "catalog.sqlite3")
    try:
        cameras = _registry(6000, 4)
        await store.import_cameras(cameras[5999:])
        with pytest.raises(ImportConflict) as caught:
            await store.import_cameras(cameras)
        assert caught.value.camera_ids == [cameras[5999].id]
        assert await store.count() == 1
        replaced = await store.put(cameras[5999])
        assert replaced
        await store.import_cameras(cameras[:4500], "upsert")  # none registered: pipelined
        await store.import_cameras(cameras, "upsert")  # some registered: the general path
        assert await store.count() == 6000
        assert await store.get_many([c.id for c in cameras]) == {c.id: c for c in cameras}
    finally:
        await store.aclose()


async def test_searches_side_by_side_answer_as_one_at_a_time(tmp_path: Path) -> None:
    """Searches spread over the reader threads, next to a write: each answers as it would
    alone."""
    store = await SqliteCatalog.open(tmp_path / "catalog.sqlite3")
    try:
        rng = random.Random(6)
        await store.import_cameras([
            Camera(id=f"s{i:05d}", name=f"Camera {i}", lat=rng.uniform(40.0, 41.0),
                   lon=rng.uniform(-88.0, -87.0)) for i in range(6000)])
        points = [(rng.uniform(40.0, 41.0), rng.uniform(-88.0, -87.0)) for _ in range(40)]
        alone = [[h.camera.id for h in (await store.nearest(*p, limit=20)).hits]
                 for p in points]
        assert all(len(found) == 20 for found in alone)
        later = _registry(8000, 7)[6000:]  # written while the searches run, mostly elsewhere
        write = asyncio.create_task(store.import_cameras(
            [Camera(id=f"x{c.id}", name=c.name, lat=c.lat, lon=c.lon) for c in later]))
        within_metre, nearest = await asyncio.gather(
            asyncio.gather(*(store.nearest(*p, limit=20, radius_m=1.0) for p in points)),
            asyncio.gather(*(store.nearest(*p, limit=20) for p in points)))
        await write
        assert all(not result.hits for result in within_metre)
        assert len(nearest) == len(alone)
        for result, expected in zip(nearest, alone, strict=True):
            # a camera of the concurrent write may rank; the others keep their order
            kept = [h.camera.id for h in result.hits if not h.camera.id.startswith("x")]
            assert kept == expected[:len(kept)]
            assert len(result.hits) >= len(expected)
    finally:
        await store.aclose()


async def test_queries_ranked_by_sqlite_answer_exactly_as_the_shared_ranking(
    tmp_path: Path,
) -> None:
    """SQLite ranks, counts and pages radius and nearest-N queries itself (its own haversine
    in SQL): the answer is the one the engine-neutral ranking gives, distance for distance, on
    every page, with filters, across the antimeridian and past the last page; and without
    SQLite's math functions the store falls back to the shared ranking."""
    rng = random.Random(3)
    cameras: list[Camera] = []
    for i, (lat, lon) in enumerate([(41.88, -87.63)] * 1500 + [(-17.71, 179.999)] * 300):
        cameras.append(Camera(
            id=f"r{i:05d}", name=f"Camera {i}", lat=lat + rng.gauss(0, 0.003),
            lon=(lon + rng.gauss(0, 0.004) + 180.0) % 360.0 - 180.0,
            heading=rng.uniform(0, 360), fov=rng.choice([60.0, 360.0]),
            range_m=rng.choice([30.0, 200.0]),
            sharing=rng.choice(list(SharingLevel))))
    store = await SqliteCatalog.open(tmp_path / "catalog.sqlite3")
    try:
        assert store.ranks_in_sql  # this SQLite has its math functions
        await store.import_cameras(cameras)
        live = Filters(sharing=frozenset({SharingLevel.LIVE_ALWAYS}))
        queries = [(point, filters, page)
                   for point in ((41.88, -87.63), (41.881, -87.628), (-17.71, 179.9995),
                                 (-17.71, -179.999))
                   for filters in (Filters(), live)
                   for page in (Page(), Page(offset=30, limit=7), Page(offset=100_000))]
        answers = {}
        for ranks_in_sql in (True, False):  # False: as a SQLite without its math functions
            store.ranks_in_sql = ranks_in_sql
            answers[ranks_in_sql] = [
                await store.within_radius(*point, 400.0, filters=filters, page=page)
                for point, filters, page in queries]
            answers[ranks_in_sql] += [
                await store.nearest(*point, limit=page.limit, offset=page.offset % 1000,
                                    radius_m=radius, filters=filters)
                for point, filters, page in queries for radius in (150.0, 50_000.0)]
        assert answers[True] == answers[False]
        assert all(answer.total for answer in answers[True][:len(queries)])
        assert sum(len(answer.hits) for answer in answers[True]) > 1000
    finally:
        await store.aclose()
