"""The real application with the tip line, small file limits and staff accounts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from rtcc.config import Settings
from rtcc.policy import Role
from server.app import create_app
from tests.fixtures.auth import bearer, role_headers, security_settings
from tips.media import TipLimits
from tips.service import FloodLimits
from tips.wiring import FLOODS, LIMITS

TIPSTER_ADDRESS = "127.0.0.7"
"""The tipster's address: distinctive, so a search of every file and log finds nothing else."""
UPLOAD_BUDGET = 400_000
"""Bytes one address may upload per rate window in these tests."""


@dataclass
class TipServer:
    client: TestClient[Any, Any]
    base: str
    settings: Settings
    admin: dict[str, str]
    analyst: dict[str, str]
    investigator: dict[str, str]


@pytest.fixture
async def tip_server(tmp_path: Path, bootstrap_token: str) -> AsyncIterator[TipServer]:
    settings = security_settings(tmp_path)
    app = create_app(settings)
    app[LIMITS] = TipLimits(image_bytes=2 * 1024**2, video_bytes=8 * 1024**2,
                            video_seconds=30.0, chunk_bytes=256 * 1024, files_per_tip=5,
                            min_free_bytes=0)
    app[FLOODS] = FloodLimits(upload_bytes=UPLOAD_BUDGET)
    # No access log, as ``rtcc serve`` runs it (server/runner.py).
    server = TestServer(app)
    await server.start_server(access_log=None)
    client: TestClient[Any, Any] = TestClient(server)
    await client.start_server()
    try:
        yield await _accounts(client, settings, bootstrap_token)
    finally:
        await client.close()


async def _accounts(client: TestClient[Any, Any], settings: Settings,
                    bootstrap_token: str) -> TipServer:
    admin = bearer(bootstrap_token)
    _, analyst = await role_headers(client, admin, Role.ANALYST)
    _, investigator = await role_headers(client, admin, Role.INVESTIGATOR)
    return TipServer(client, str(client.make_url("")).rstrip("/"), settings, admin, analyst,
                     investigator)


def session_from(address: str) -> aiohttp.ClientSession:
    """A client whose connections leave from ``address`` (a loopback address)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)),
                                 cookie_jar=aiohttp.DummyCookieJar())


@pytest.fixture
async def tipster() -> AsyncIterator[aiohttp.ClientSession]:
    async with session_from(TIPSTER_ADDRESS) as session:
        yield session
