"""The real application records a camera configured with ``record: true``, and records a camera
while an incident it is linked to is active (if its owner shares it live)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rtcc.config import CameraConfig, EvidenceConfig, ProfileConfig, SecurityConfig, Settings
from rtcc.policy import Role
from server.app import create_app
from tests.fixtures.auth import MakeClient, bearer, role_headers
from tests.fixtures.camsim import CamsimHandle


async def poll(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        await asyncio.sleep(0.1)


def _camera(camera_id: str, url: str, **extra: Any) -> CameraConfig:
    return CameraConfig(id=camera_id, name=f"Camera {camera_id}", lat=40.0, lon=-75.0,
                        profiles={"main": ProfileConfig(url=url)}, **extra)


async def test_the_application_records_configured_and_incident_cameras(
    camsim: CamsimHandle, tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        security=SecurityConfig(allow_private_camera_hosts=["127.0.0.0/8"]),
        evidence=EvidenceConfig(segment_seconds=1, min_free_mb=0),
        cameras=[
            _camera("always", camsim.url("open"), record=True, retention_days=3),
            _camera("emergency", camsim.url("gop4"), sharing="live_emergency"),
        ],
    )
    client = await make_client(create_app(settings))
    admin = bearer(bootstrap_token)
    _, analyst = await role_headers(client, admin, Role.ANALYST)
    _, investigator = await role_headers(client, admin, Role.INVESTIGATOR)

    async def status() -> dict[str, Any]:
        response = await client.get("/api/recordings/status", headers=analyst)
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body

    async def recorders() -> dict[str, dict[str, Any]]:
        return {r["camera_id"]: r for r in (await status())["recorders"]}

    found = await recorders()
    assert set(found) == {"always"}
    assert found["always"]["why"] == "record: true in the configuration"

    opened = await client.post("/api/incidents", headers=analyst,
                               json={"id": "inc-7", "cameras": ["emergency"]})
    assert opened.status == 201

    async def both_recording() -> bool:
        found.update(await recorders())
        return "emergency" in found and int(found["always"]["segments_closed"]) >= 1

    await poll(both_recording, 20, "the incident camera to record")
    assert found["emergency"]["why"] == "linked to active incident inc-7"
    assert int(found["always"]["segments_closed"]) >= 1

    segments = await (await client.get("/api/recordings?camera=always",
                                       headers=investigator)).json()
    closed_segments = [seg for seg in segments["segments"] if seg["state"] == "complete"]
    assert closed_segments
    assert all(len(seg["sha256"]) == 64 for seg in closed_segments)
    closed = await client.post("/api/incidents/inc-7/close", headers=analyst)
    assert closed.status == 200

    async def only_configured() -> bool:
        return set(await recorders()) == {"always"}

    await poll(only_configured, 10, "the incident camera to stop recording")

    key = await (await client.get("/api/evidence/public-key")).json()
    assert key["algorithm"] == "Ed25519"
    assert len(key["fingerprint"]) == 64
