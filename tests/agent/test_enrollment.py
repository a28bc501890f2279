"""Enrollment tokens, agent credentials, the control WebSocket, inventory and revocation,
through the real application (the agent's side is played by the test)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from ingest.agentlink.wiring import AGENT_SERVICE
from rtcc.agent_protocol import CLOSE_REVOKED
from rtcc.appkeys import CLOCK, HUB
from rtcc.errors import SourceUnavailable
from rtcc.policy import Role
from server.app import create_app
from tests.fixtures.auth import FakeClock, MakeClient, bearer, role_headers, security_settings

CANARY = "inventory-Pa55-canary"
CAMERA = {
    "key": "onvif:192.0.2.20:80", "name": "Front door", "source": "onvif",
    "manufacturer": "Acme", "model": "X1", "firmware": "2.1",
    "profiles": [{"name": "main", "encoding": "H264", "width": 1280, "height": 720, "fps": 25},
                 {"name": "sub", "encoding": "H264", "width": 640, "height": 360, "fps": 15}],
    "ptz": True, "snapshot": True, "status": "ok", "error": "",
    # fields the protocol does not know: never stored, never shown
    "password": CANARY, "rtsp_url": f"rtsp://admin:{CANARY}@192.0.2.20/main",
}


async def _start(tmp_path: Path, make_client: MakeClient,
                 clock: FakeClock | None = None) -> TestClient[Any, Any]:
    app = create_app(security_settings(tmp_path))
    if clock is not None:
        app[CLOCK] = clock  # type: ignore[misc]
    return await make_client(app)


async def _enrollment(client: TestClient[Any, Any], owner: dict[str, str],
                      **body: Any) -> dict[str, Any]:
    response = await client.post("/api/agent/enrollments", json=body, headers=owner)
    data: dict[str, Any] = await response.json()
    assert response.status == 201, data
    return data


async def _enroll(client: TestClient[Any, Any], token: str,
                  expect: int = 201) -> dict[str, Any]:
    response = await client.post("/api/agent/enroll", json={"token": token, "name": "shop pc"})
    data: dict[str, Any] = await response.json()
    assert response.status == expect, data
    return data


async def test_tokens_are_single_use_and_expire(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    clock = FakeClock()
    client = await _start(tmp_path, make_client, clock)
    admin = bearer(bootstrap_token)
    _, owner = await role_headers(client, admin, Role.OWNER, owner_id="shop1")
    _, analyst = await role_headers(client, admin, Role.ANALYST)

    refused = await client.post("/api/agent/enrollments", json={}, headers=analyst)
    assert refused.status == 403
    missing = await client.post("/api/agent/enrollments", json={}, headers=admin)
    assert missing.status == 400
    assert "owner_id" in (await missing.json())["error"]
    foreign = await client.post("/api/agent/enrollments", json={"owner_id": "shop9"},
                                headers=owner)
    assert foreign.status == 403

    issued = await _enrollment(client, owner)
    assert issued["owner_id"] == "shop1"
    enrolled = await _enroll(client, issued["token"])
    assert enrolled["owner_id"] == "shop1"
    me = await client.get("/api/me", headers=bearer(enrolled["credential"]))
    assert (await me.json())["role"] == "agent"

    again = await _enroll(client, issued["token"], expect=401)
    assert "already used" in again["error"]
    unknown = await _enroll(client, "rtcce_not-a-token", expect=401)
    assert "not valid" in unknown["error"]
    empty = await client.post("/api/agent/enroll", json={})
    assert empty.status == 400

    short = await _enrollment(client, admin, owner_id="shop1", expires_minutes=1)
    clock.advance(120)
    expired = await _enroll(client, short["token"], expect=410)
    assert "expired" in expired["error"]

    audit = await client.get("/api/audit", headers=admin, params={"limit": "200"})
    assert audit.status == 200
    text = await audit.text()
    assert "agent.enroll" in text
    assert issued["token"] not in text
    assert enrolled["credential"] not in text


async def test_control_socket_inventory_and_revocation(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    client = await _start(tmp_path, make_client)
    admin = bearer(bootstrap_token)
    _, owner = await role_headers(client, admin, Role.OWNER, owner_id="shop1")
    _, neighbour = await role_headers(client, admin, Role.OWNER, owner_id="shop2")
    _, other_agent_user = await role_headers(client, admin, Role.AGENT, owner_id="shop1")
    enrolled = await _enroll(client, (await _enrollment(client, owner))["token"])
    agent = bearer(enrolled["credential"])

    plain = await client.get("/api/agent/ws", headers=agent)
    assert plain.status == 400  # not a WebSocket upgrade
    stranger = await client.get("/api/agent/ws", headers=other_agent_user)
    assert stranger.status == 403  # an AGENT account that no enrollment created

    ws = await client.ws_connect("/api/agent/ws", headers=agent)
    welcome = await ws.receive_json()
    assert welcome["type"] == "welcome"
    assert welcome["agent_id"] == enrolled["agent_id"]
    await ws.send_str(json.dumps({"type": "hello", "hostname": "shop-pc", "version": "t"}))
    bad = dict(CAMERA, key="bad key with spaces")
    await ws.send_str(json.dumps({"type": "inventory", "cameras": [CAMERA, bad]}))
    ack = await ws.receive_json()
    assert ack["type"] == "inventory_ack"
    (entry,) = ack["cameras"]
    camera_id = entry["camera_id"]
    assert entry["key"] == CAMERA["key"]
    assert camera_id.startswith(enrolled["agent_id"] + "-")

    hub = client.app[HUB]
    assert sorted(hub.profiles(camera_id)) == ["main", "sub"]

    listing = await client.get("/api/agents", headers=owner)
    body = await listing.text()
    (described,) = json.loads(body)["agents"]
    assert described["connected"]
    assert described["hostname"] == "shop-pc"
    assert [c["camera_id"] for c in described["cameras"]] == [camera_id]
    assert described["cameras"][0]["model"] == "X1"
    assert CANARY not in body
    assert (await (await client.get("/api/agents", headers=neighbour)).json())["agents"] == []

    # publishing what nobody asked for, or another agent's camera, is refused
    offer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
    unasked = await client.post(f"/whip/{camera_id}", data=offer, headers={
        **agent, "Content-Type": "application/sdp"})
    assert unasked.status == 409
    foreign = await client.post(f"/whip/{camera_id}", data=offer, headers={
        **other_agent_user, "Content-Type": "application/sdp"})
    assert foreign.status == 403

    # a viewer arrives: the server asks the agent; the agent's error reaches the viewer at once
    stream = hub.get(camera_id, "main")
    viewer = asyncio.create_task(stream.subscribe("viewer", wait=True))
    command = await ws.receive_json()
    assert (command["type"], command["action"]) == ("command", "start_stream")
    assert command["key"] == CAMERA["key"]
    assert command["path"] == f"/whip/{camera_id}?profile=main"
    await ws.send_str(json.dumps({"type": "result", "id": command["id"], "ok": False,
                                  "error": "the camera is unplugged"}))
    with pytest.raises(SourceUnavailable, match="the camera is unplugged") as unplugged:
        await viewer
    assert enrolled["agent_id"] not in str(unplugged.value).split(": ", 1)[1]
    await ws.close()
    async with asyncio.timeout(5):
        while client.app[AGENT_SERVICE].registry.get(enrolled["agent_id"]) is not None:
            await asyncio.sleep(0.02)
    with pytest.raises(SourceUnavailable, match="the owner's agent is offline") as offline:
        await hub.get(camera_id, "sub").subscribe("viewer", wait=True)
    # Analysts read this reason (after the camera's own id): the agent's id stays in the log.
    assert enrolled["agent_id"] not in str(offline.value).split(": ", 1)[1]
    ws = await client.ws_connect("/api/agent/ws", headers=agent)
    assert (await ws.receive_json())["type"] == "welcome"

    refused = await client.post(f"/api/agents/{enrolled['agent_id']}/revoke", headers=neighbour)
    assert refused.status == 404
    revoked = await client.post(f"/api/agents/{enrolled['agent_id']}/revoke", headers=owner)
    assert revoked.status == 200
    closing = await ws.receive()
    while closing.type == aiohttp.WSMsgType.TEXT:  # commands sent before the revocation
        closing = await ws.receive()
    assert closing.type == aiohttp.WSMsgType.CLOSE
    assert closing.data == CLOSE_REVOKED
    assert not hub.has_camera(camera_id)
    assert (await client.get("/api/me", headers=agent)).status == 401
    with pytest.raises(aiohttp.WSServerHandshakeError) as again:
        await client.ws_connect("/api/agent/ws", headers=agent)
    assert again.value.status == 401

    for path in (tmp_path / "data").iterdir():
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path.name
