"""Password hashing runs on a small bounded pool: a flood of wrong-password logins is answered
(401) while a viewer of a live camera keeps decoding at its usual rate."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from rtcc.appkeys import WORKERS
from rtcc.policy import Role
from rtcc.workers import WorkerPool
from security.core import SECURITY
from tests.fixtures.auth import MakeClient, bearer, create_user, role_headers
from tests.fixtures.camsim import CamsimHandle
from tests.relay.test_app_e2e import start
from tests.relay.whep_client import WhepViewer

USERS = 10
ATTEMPTS_PER_USER = 4  # below the lockout threshold (5): every answer is a plain 401


async def test_the_pool_runs_at_most_its_threads_at_once_and_queues_the_rest() -> None:
    lock = threading.Lock()
    running = 0
    most = 0

    def job(value: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return value * 2

    async with WorkerPool(2) as pool:
        jobs = [asyncio.create_task(pool.run(job, i)) for i in range(12)]
        await asyncio.sleep(0.005)
        assert pool.stats()["waiting"] == 10  # waiting on the loop, not queued in the executor
        results = await asyncio.gather(*jobs)
    assert results == [i * 2 for i in range(12)]
    assert most == 2
    assert pool.stats()["completed"] == 12


async def _count_frames(viewer: WhepViewer, seconds: float) -> float:
    """Decoded frames per second over the next ``seconds``."""
    before, started = viewer.decoded.count, time.monotonic()
    await asyncio.sleep(seconds)
    return (viewer.decoded.count - before) / (time.monotonic() - started)


async def _wrong_login(client: TestClient[Any, Any], username: str, attempt: int) -> int:
    response = await client.post("/api/login", json={
        "username": username, "password": f"not the password, attempt {attempt}"})
    await response.read()
    return response.status


async def test_a_wrong_password_flood_does_not_starve_a_live_viewer(
    tmp_path: Path, camsim: CamsimHandle, bootstrap_token: str, make_client: MakeClient
) -> None:
    client, base = await start(tmp_path, camsim, make_client)
    # The flood comes from one address; lift the attempt limits so every attempt is hashed.
    limiter = client.app[SECURITY].login_limiter
    limiter.per_address_burst = limiter.global_burst = USERS * ATTEMPTS_PER_USER
    admin = bearer(bootstrap_token)
    _, analyst = await role_headers(client, admin, Role.ANALYST)
    targets = [await create_user(client, admin, Role.OWNER) for _ in range(USERS)]
    pool = client.app[WORKERS]
    async with aiohttp.ClientSession() as http:
        viewer = WhepViewer(base, "open", headers=analyst, query={"purpose": "flood test"})
        try:
            await viewer.connect(http)
            await viewer.wait_frames(20, timeout=20)
            at_rest = await _count_frames(viewer, 3.0)
            hashed_before = pool.completed
            frames_before, started = viewer.decoded.count, time.monotonic()
            statuses = await asyncio.gather(*(
                _wrong_login(client, user.username, attempt)
                for attempt in range(ATTEMPTS_PER_USER) for user in targets))
            elapsed = time.monotonic() - started
            during = (viewer.decoded.count - frames_before) / elapsed
        finally:
            await viewer.close()
    print(f"login flood: {len(statuses)} logins in {elapsed:.2f} s; viewer decoded "
          f"{during:.1f} frames/s during it, {at_rest:.1f} at rest")
    assert statuses == [401] * USERS * ATTEMPTS_PER_USER
    assert pool.completed - hashed_before >= len(statuses)  # each verified on the pool
    assert at_rest > 0
    assert during >= 0.7 * at_rest
