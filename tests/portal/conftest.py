"""The real application for owner-portal tests: security, catalog, hub, RTSP ingest, relay,
agents and evidence, with loopback cameras allowlisted (the simulator runs on 127.0.0.1)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from rtcc.config import ConsoleConfig, HubConfig, Place, SecurityConfig, Settings
from server.app import create_app
from tests.fixtures.auth import MakeClient, bearer

START = (39.80000, -89.64500)
"""Where the portal's map opens (the department's first configured place)."""


@dataclass
class PortalServer:
    client: TestClient[Any, Any]
    base: str
    admin: dict[str, str]


def portal_settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        store=f"sqlite:///{tmp_path / 'data' / 'catalog.sqlite3'}",
        security=SecurityConfig(allow_private_camera_hosts=["127.0.0.0/8"]),
        hub=HubConfig(close_after=2.0, start_timeout=8.0),
        console=ConsoleConfig(places=[Place(name="Main St & 1st", lat=START[0], lon=START[1])]),
    )


@pytest.fixture
async def portal_server(tmp_path: Path, bootstrap_token: str,
                        make_client: MakeClient) -> PortalServer:
    client = await make_client(create_app(portal_settings(tmp_path)))
    base = str(client.make_url("")).rstrip("/")
    return PortalServer(client, base, bearer(bootstrap_token))

