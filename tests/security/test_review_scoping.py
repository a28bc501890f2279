"""Review of per-object scoping through the real application: one owner (and that owner's agent)
can neither see nor change another owner's sites, cameras, agents, footage requests or access
log; a refusal looks exactly like "no such thing"."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from rtcc.config import SecurityConfig, Settings
from rtcc.policy import Role
from server.app import create_app
from tests.fixtures.auth import MakeClient, bearer, role_headers
from tests.fixtures.canary import CAMSIM_PASSWORD

INVENTORY_CAMERA = {
    "key": "onvif:192.0.2.30:80", "name": "Back door", "source": "onvif",
    "profiles": [{"name": "main", "encoding": "H264", "width": 640, "height": 360, "fps": 15}],
    "ptz": False, "snapshot": False, "status": "ok", "error": "",
}


async def _call(client: TestClient[Any, Any], method: str, path: str,
                headers: dict[str, str], expect: int, **kwargs: Any) -> Any:
    response = await client.request(method, path, headers=headers, **kwargs)
    text = await response.text()
    assert response.status == expect, (method, path, response.status, text)
    assert CAMSIM_PASSWORD not in text
    return json.loads(text) if text and response.content_type == "application/json" else text


async def _agent_camera(client: TestClient[Any, Any], owner: dict[str, str]
                        ) -> tuple[str, dict[str, str], str]:
    """Enroll an agent for ``owner`` and report one camera: (agent id, its bearer, camera id)."""
    token = (await _call(client, "POST", "/api/agent/enrollments", owner, 201, json={}))["token"]
    enrolled = await _call(client, "POST", "/api/agent/enroll", {}, 201,
                           json={"token": token, "name": "review pc"})
    agent = bearer(enrolled["credential"])
    ws = await client.ws_connect("/api/agent/ws", headers=agent)
    try:
        assert (await ws.receive_json())["type"] == "welcome"
        await ws.send_str(json.dumps({"type": "inventory", "cameras": [INVENTORY_CAMERA]}))
        ack = await ws.receive_json()
        assert ack["type"] == "inventory_ack", ack
    finally:
        await ws.close()
    return enrolled["agent_id"], agent, ack["cameras"][0]["camera_id"]


async def test_owners_and_their_agents_are_confined_to_their_own_records(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    settings = Settings(data_dir=tmp_path / "data",
                        security=SecurityConfig(allow_private_camera_hosts=["10.0.0.0/8"]))
    client = await make_client(create_app(settings))
    admin = bearer(bootstrap_token)
    _, alice = await role_headers(client, admin, Role.OWNER, owner_id="shop-a")
    _, bob = await role_headers(client, admin, Role.OWNER, owner_id="shop-b")
    _, investigator = await role_headers(client, admin, Role.INVESTIGATOR)

    site = await _call(client, "POST", "/api/owner/sites", alice, 201,
                       json={"address": "1 Main Street"})
    created = await _call(client, "POST", "/api/owner/cameras", alice, 201, json={
        "name": "Alice front", "lat": 39.8, "lon": -89.6, "sharing": "on_request",
        "site_id": site["id"], "profiles": {"main": {
            # public: the department's allowlist is not for owners' registrations
            "url": "rtsp://1.2.3.4/main", "username": "view", "password": CAMSIM_PASSWORD}}})
    camera_id = created["camera"]["id"]
    agent_id, alice_agent, agent_camera = await _agent_camera(client, alice)

    # Bob: Alice's things do not exist for him
    for method, path, body in (
        ("GET", f"/api/owner/cameras/{camera_id}", None),
        ("PATCH", f"/api/owner/cameras/{camera_id}", {"sharing": "live_always"}),
        ("DELETE", f"/api/owner/cameras/{camera_id}", None),
        ("PATCH", f"/api/owner/sites/{site['id']}", {"address": "taken"}),
        ("DELETE", f"/api/owner/sites/{site['id']}", None),
        ("POST", f"/api/agents/{agent_id}/revoke", None),
    ):
        await _call(client, method, path, bob, 404, json=body)
    listed = await _call(client, "GET", "/api/owner/cameras", bob, 200)
    assert listed["cameras"] == []
    assert (await _call(client, "GET", "/api/owner/sites", bob, 200))["sites"] == []
    assert (await _call(client, "GET", "/api/agents", bob, 200))["agents"] == []
    await _call(client, "POST", "/api/agent/enrollments", bob, 403, json={"owner_id": "shop-a"})
    refusals: tuple[dict[str, Any], ...] = (
        {"site_id": site["id"]},  # Alice's site
        {"owner_id": "shop-a"},  # registering for someone else
        {"via_agent": True, "id": agent_camera},  # a camera Alice's agent found
    )
    for refused in refusals:
        camera = {"name": "Bob cam", "lat": 39.8, "lon": -89.6, "sharing": "registry_only",
                  **refused}
        await _call(client, "POST", "/api/owner/cameras", bob, 400, json=camera)

    # Alice's agent acts for Alice only through agent routes, never as an owner
    await _call(client, "GET", "/api/owner/cameras", alice_agent, 403)
    await _call(client, "POST", f"/api/agents/{agent_id}/revoke", alice_agent, 403)

    # footage requests: the investigator asks Alice; Bob sees nothing and decides nothing
    now = time.time()
    asked = await _call(client, "POST", "/api/footage-requests", investigator, 201, json={
        "cameras": [camera_id], "from": now - 600, "to": now - 60, "case": "RV-1",
        "reason": "scoping review"})
    await _call(client, "GET", f"/api/footage-requests/{asked['id']}", bob, 404)
    await _call(client, "POST", f"/api/footage-requests/{asked['id']}/approve", bob, 404,
                json={})
    bobs = await _call(client, "GET", "/api/footage-requests", bob, 200)
    assert all(r["id"] != asked["id"] for r in bobs["requests"])
    await _call(client, "GET", f"/api/footage-requests/{asked['id']}", alice, 200)

    # the access log: Alice's entries are hers alone
    alices_log = await _call(client, "GET", "/api/access-log", alice, 200)
    assert any(entry["camera_id"] == camera_id for entry in alices_log["entries"])
    bobs_log = await _call(client, "GET", "/api/access-log", bob, 200)
    assert all(entry["owner_id"] == "shop-b" for entry in bobs_log["entries"])
    assert not any(camera_id in json.dumps(entry) for entry in bobs_log["entries"])

    # nothing Bob tried changed anything
    mine = await _call(client, "GET", f"/api/owner/cameras/{camera_id}", alice, 200)
    assert mine["sharing"] == "on_request"
    assert mine["site_id"] == site["id"]
    assert mine["profiles"]["main"]["has_password"] is True
    agents = await _call(client, "GET", "/api/agents", alice, 200)
    assert [a["id"] for a in agents["agents"]] == [agent_id]
    assert agents["agents"][0]["revoked"] is None
