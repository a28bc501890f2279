"""An administrator narrowing a camera's sharing ends its live sessions and is audited."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rtcc.appkeys import HUB
from rtcc.config import SecurityConfig, Settings
from server.app import create_app
from tests.fixtures.auth import MakeClient, bearer
from tests.fixtures.camsim import CamsimHandle


async def test_admin_narrowing_consent_ends_sessions_and_is_audited(
    tmp_path: Path, camsim: CamsimHandle, bootstrap_token: str, make_client: MakeClient
) -> None:
    settings = Settings(data_dir=tmp_path / "data",
                        security=SecurityConfig(allow_private_camera_hosts=["127.0.0.0/8"]))
    app = create_app(settings)
    client = await make_client(app)
    admin = bearer(bootstrap_token)
    camera = {"id": "plaza", "name": "Plaza", "lat": 39.8, "lon": -89.6,
              "sharing": "live_always", "profiles": {"main": {"url": camsim.url("open")}}}
    response = await client.post("/api/cameras", json=camera, headers=admin)
    assert response.status == 201, await response.text()
    hub = app[HUB]
    for _ in range(200):
        if hub.has_camera("plaza"):
            break
        await asyncio.sleep(0.05)
    viewer = await hub.get("plaza", "main").subscribe("viewer")

    response = await client.patch("/api/cameras/plaza", json={"sharing": "live_emergency"},
                                  headers=admin)
    assert response.status == 200, await response.text()
    assert viewer.closed, "the view the camera's new consent no longer allows was ended"

    response = await client.get("/api/audit", headers=admin)
    entries = (await response.json())["entries"]
    changes = [e for e in entries if e["action"] == "consent.change" and e["camera_id"] == "plaza"]
    assert any(e["details"]["before"]["sharing"] == "live_always"
               and e["details"]["after"]["sharing"] == "live_emergency" for e in changes), changes
