"""A camera registered through the catalog API streams at once; changes and removal follow."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from rtcc.appkeys import HUB
from rtcc.config import SecurityConfig, Settings
from rtcc.errors import CameraNotFound
from server.app import create_app
from tests.fixtures.auth import MakeClient, bearer
from tests.fixtures.camsim import SECURE_PASSWORD, SECURE_USER, CamsimHandle


async def eventually(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)


async def test_api_registered_camera_streams_then_follows_updates_and_deletion(
    tmp_path: Path, camsim: CamsimHandle, bootstrap_token: str, make_client: MakeClient
) -> None:
    settings = Settings(data_dir=tmp_path / "data",
                        security=SecurityConfig(allow_private_camera_hosts=["127.0.0.0/8"]))
    app = create_app(settings)
    client = await make_client(app)
    admin = bearer(bootstrap_token)
    camera = {
        "id": "corner-store", "name": "Corner store", "lat": 39.8, "lon": -89.6,
        "sharing": "live_always",
        "profiles": {"main": {"url": camsim.url("secure"), "username": SECURE_USER,
                              "password": SECURE_PASSWORD}},
    }
    response = await client.post("/api/cameras", json=camera, headers=admin)
    assert response.status == 201, await response.text()
    assert SECURE_PASSWORD not in await response.text()

    hub = app[HUB]
    await eventually(lambda: hub.has_camera("corner-store"))
    stream = hub.get("corner-store", "main")
    subscription = await stream.subscribe("test")
    frame = await subscription.get()
    assert frame.keyframe, "the stored (encrypted) password was used to pull the camera"
    subscription.close()

    camera["profiles"]["sub"] = {"url": camsim.url("open")}  # type: ignore[index]
    response = await client.put("/api/cameras/corner-store", json=camera, headers=admin)
    assert response.status == 200, await response.text()
    await eventually(lambda: "sub" in hub.profiles("corner-store"))
    assert sorted(hub.profiles("corner-store")) == ["main", "sub"]

    response = await client.delete("/api/cameras/corner-store", headers=admin)
    assert response.status in (200, 204)
    await eventually(lambda: not hub.has_camera("corner-store"))
    with pytest.raises(CameraNotFound):
        hub.get("corner-store", "main")
