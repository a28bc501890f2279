"""A database that stops answering is a 503 with ``Retry-After`` from every route that needs it,
never a 500; the views already open keep decoding; once it is back the same routes answer again
without restarting the server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
from pydantic import SecretStr

from rtcc.config import (
    CameraConfig,
    DatabaseConfig,
    ProfileConfig,
    SecurityConfig,
    Settings,
    SharingLevel,
)
from rtcc.policy import Role
from server.app import create_app
from tests.fixtures.auth import MakeClient, bearer, role_headers
from tests.fixtures.camsim import CamsimHandle
from tests.fixtures.postgres import PostgresServer, start_postgres
from tests.relay.whep_client import WhepViewer

ROUTES = ("/api/cameras", "/api/cad/incidents", "/api/exports", "/api/holds",
          "/api/footage-requests")
"""Catalog, incidents and evidence routes, each reading its store."""


async def test_a_stopped_database_answers_503_and_the_routes_come_back(
    tmp_path: Path, camsim: CamsimHandle, bootstrap_token: str, make_client: MakeClient
) -> None:
    server: PostgresServer = await asyncio.to_thread(start_postgres)
    try:
        url = server.url(await asyncio.to_thread(server.new_database))
        settings = Settings(
            data_dir=tmp_path / "data",
            database=DatabaseConfig(url=SecretStr(url), connect_timeout=2,
                                    migrate_on_start=True),
            security=SecurityConfig(allow_private_camera_hosts=["127.0.0.0/8"]),
            cameras=[CameraConfig(id="open", name="camsim open", lat=40.0, lon=-75.0,
                                  sharing=SharingLevel.LIVE_ALWAYS,
                                  profiles={"main": ProfileConfig(url=camsim.url("open"))})])
        client = await make_client(create_app(settings))
        base = str(client.make_url("")).rstrip("/")
        admin = bearer(bootstrap_token)
        _, analyst = await role_headers(client, admin, Role.ANALYST)
        _, supervisor = await role_headers(client, admin, Role.SUPERVISOR)
        for route in ROUTES:
            response = await client.get(route, headers=supervisor)
            assert response.status == 200, f"{route}: {await response.text()}"
        async with aiohttp.ClientSession() as http:
            viewer = WhepViewer(base, "open", headers=analyst, query={"purpose": "outage test"})
            try:
                await viewer.connect(http)
                await viewer.wait_frames(10, timeout=20)

                await asyncio.to_thread(server.stop)
                before = viewer.decoded.count
                for route in ROUTES:
                    response = await client.get(route, headers=supervisor)
                    assert response.status == 503, f"{route}: {await response.text()}"
                    assert int(response.headers["Retry-After"]) >= 1, route
                    assert (await response.json())["error"], route
                deadline = time.monotonic() + 20
                while viewer.decoded.count < before + 30:
                    assert time.monotonic() < deadline, "the open view stopped decoding"
                    await asyncio.sleep(0.1)

                server = await asyncio.to_thread(server.restart)
                for route in ROUTES:
                    deadline = time.monotonic() + 30
                    while (response := await client.get(route, headers=supervisor)).status != 200:
                        assert response.status == 503, f"{route}: {await response.text()}"
                        assert time.monotonic() < deadline, f"{route} never came back"
                        await asyncio.sleep(0.5)
            finally:
                await viewer.close()
    finally:
        await asyncio.to_thread(server.remove)
