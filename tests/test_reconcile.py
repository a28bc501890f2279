"""Events are a shortcut, the store is the truth: with Redis stopped and started again, a camera
whose change event was lost is registered and recorded within the reconcile period, a viewer
asking during the outage gets 503 with the reason, and ``record: true`` set through the API
records."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiortc import RTCPeerConnection

from catalog.keys import LIVE_FEED
from catalog.model import camera_from_config
from catalog.redis_store import RedisCatalog
from rtcc.appkeys import HUB
from rtcc.config import (
    CameraConfig,
    EvidenceConfig,
    ProfileConfig,
    SecurityConfig,
    Settings,
    SharingLevel,
)
from rtcc.policy import Role
from server.app import create_app
from tests.fixtures.auth import MakeClient, bearer, role_headers
from tests.fixtures.camsim import CamsimHandle
from tests.fixtures.redis_server import RedisServer, start_redis
from tests.relay.whep_client import make_offer


async def poll(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        await asyncio.sleep(0.2)


def _stop(server: RedisServer) -> None:
    assert server.command("SAVE") == b"+OK"  # the restarted server loads the catalog back
    server.process.terminate()
    server.process.wait(timeout=10)


async def _restart(server: RedisServer) -> RedisServer:
    process = subprocess.Popen(server.process.args, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    again = RedisServer(server.host, server.port, process)
    for _ in range(200):
        try:
            if again.command("PING", timeout=1.0) == b"+PONG":
                return again
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError("redis-server did not start again")


def _camera_json(camera_id: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"id": camera_id, "name": f"Camera {camera_id}", "lat": 40.0, "lon": -75.0,
            "profiles": {"main": {"url": url}}, **extra}


async def test_a_redis_outage_costs_seconds_never_correctness(
    camsim: CamsimHandle, tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    redis = start_redis(tmp_path)
    try:
        settings = Settings(
            store=redis.url, data_dir=tmp_path / "data", reconcile_seconds=2.0,
            security=SecurityConfig(allow_private_camera_hosts=["127.0.0.0/8"]),
            evidence=EvidenceConfig(segment_seconds=1, min_free_mb=0),
        )
        app = create_app(settings)
        client = await make_client(app)
        admin = bearer(bootstrap_token)
        _, analyst = await role_headers(client, admin, Role.ANALYST)
        created = await client.post("/api/cameras", headers=admin, json=_camera_json(
            "before", camsim.url("open"), sharing="live_always"))
        assert created.status == 201, await created.text()
        hub = app[HUB]

        _stop(redis)
        listed = await client.get("/api/cameras", headers=analyst)
        assert listed.status == 503
        pc = RTCPeerConnection()
        try:
            viewer = await client.post("/whep/before", data=await make_offer(pc),
                                       headers={**analyst, "Content-Type": "application/sdp"})
        finally:
            await pc.close()
        assert viewer.status == 503
        assert "catalog" in await viewer.text()

        redis = await _restart(redis)
        # Another process registers a camera and its event is lost (published while this
        # process was not subscribed): only reading the store again can find it.
        other = await RedisCatalog.open(redis.url)
        try:
            await other.create(camera_from_config(CameraConfig(
                id="after", name="After", lat=40.0, lon=-75.0, sharing=SharingLevel.LIVE_EMERGENCY,
                profiles={"main": ProfileConfig(url=camsim.url("gop4"))}), None))
        finally:
            await other.aclose()

        async def registered() -> bool:
            return hub.has_camera("after")

        await poll(registered, 30, "the camera written without an event to be registered")

        async def resubscribed() -> bool:  # and the lost subscription made every reader re-read
            return app[LIVE_FEED].resyncs >= 1

        await poll(resubscribed, 30, "the event subscription to be back")

        async def recorders() -> dict[str, dict[str, Any]]:
            response = await client.get("/api/recordings/status", headers=analyst)
            if response.status != 200:
                return {}
            body = await response.json()
            return {r["camera_id"]: r for r in body["recorders"]}

        opened = await client.post("/api/incidents", headers=analyst,
                                   json={"id": "inc-9", "cameras": ["after"]})
        assert opened.status == 201, await opened.text()
        flagged = await client.post("/api/cameras", headers=admin, json=_camera_json(
            "flagged", camsim.url("open"), record=True))
        assert flagged.status == 201, await flagged.text()

        found: dict[str, dict[str, Any]] = {}

        async def both_recorded() -> bool:
            found.update(await recorders())
            return all(camera in found and int(found[camera]["segments_closed"]) >= 1
                       for camera in ("after", "flagged"))

        await poll(both_recorded, 40, "the incident camera and the flagged camera to record")
        assert found["after"]["why"] == "linked to active incident inc-9"
        assert found["flagged"]["why"] == "record: true in the catalog"
    finally:
        redis.process.terminate()
        redis.process.wait(timeout=10)
