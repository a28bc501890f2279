"""The documented Python client (docs/api_client.py) against the real application."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from docs.api_client import RtccClient
from rtcc.policy import Role
from server.app import create_app
from tests.fixtures.auth import MakeClient, bearer, role_headers, security_settings


async def test_client_logs_in_gets_a_token_and_lists_cameras(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    client = await make_client(create_app(security_settings(tmp_path)))
    admin = bearer(bootstrap_token)
    camera = {"id": "cam1", "name": "Main St", "lat": 39.8, "lon": -89.64}
    assert (await client.post("/api/cameras", json=camera, headers=admin)).status == 201
    analyst, _ = await role_headers(client, admin, Role.ANALYST)
    base = str(client.make_url("/")).rstrip("/")
    # unsafe=True: the test server's address is an IP, whose cookies aiohttp drops otherwise.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        api = RtccClient(session, base)
        code = analyst.next_code() if analyst.totp_secret else ""
        token = await api.login_with_token(analyst.username, analyst.password, code)
        assert token
        cameras = await api.cameras_near(39.8, -89.64)
        assert [c.id for c in cameras] == ["cam1"]
        # Not an SDP offer: the relay says what is wrong.
        with pytest.raises(RuntimeError, match="cam1 refused"):
            await api.open_view("cam1", "not an offer", purpose="test")
