"""The Redis catalog under a burst: searches beyond the connection limit wait for a connection
instead of failing, and a pool that stays full gives an error that names Redis."""

from __future__ import annotations

import asyncio

import pytest

from catalog.errors import StoreUnavailable
from catalog.model import Camera
from catalog.redis_store import RedisCatalog
from catalog.store import STORE_ERRORS


def _grid() -> list[Camera]:
    return [Camera(id=f"cam-{row}-{col}", name=f"cam {row} {col}", lat=40.0 + row * 0.001,
                   lon=-88.0 + col * 0.001) for row in range(10) for col in range(10)]


async def test_a_burst_larger_than_the_pool_waits_and_every_search_succeeds(
    redis_url: str,
) -> None:
    store = await RedisCatalog.open(redis_url, max_connections=3)
    try:
        await store.import_cameras(_grid())
        expected_near = [h.camera.id for h in (await store.nearest(40.004, -87.996)).hits]
        expected_total = (await store.within_radius(40.004, -87.996, 300.0)).total

        async def near() -> list[str]:
            return [h.camera.id for h in (await store.nearest(40.004, -87.996)).hits]

        async def radius() -> int | None:
            return (await store.within_radius(40.004, -87.996, 300.0)).total

        burst = 60  # twenty times the pool
        async with asyncio.TaskGroup() as group:
            nears = [group.create_task(near()) for _ in range(burst)]
            radii = [group.create_task(radius()) for _ in range(burst)]
        assert [t.result() for t in nears] == [expected_near] * burst
        assert [t.result() for t in radii] == [expected_total] * burst
        assert len(expected_near) == 20
    finally:
        await store.aclose()


async def test_a_pool_that_stays_full_fails_with_an_error_naming_redis(redis_url: str) -> None:
    store = await RedisCatalog.open(redis_url, max_connections=1, pool_wait_s=0.2)
    try:
        await store.import_cameras(_grid()[:5])
        pool = store.client.connection_pool
        held = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            with pytest.raises(StoreUnavailable, match="connection to Redis") as raised:
                await store.nearest(40.0, -88.0)
            assert isinstance(raised.value, STORE_ERRORS)  # the API answers 503
        finally:
            await pool.release(held)
        assert len((await store.nearest(40.0, -88.0)).hits) == 5
    finally:
        await store.aclose()
