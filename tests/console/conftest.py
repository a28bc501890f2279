"""A real application (security, catalog, hub, RTSP ingest, relay) with simulated cameras laid
out around one street corner, and a logged-in analyst in headless Chromium.

The corner ``PIN`` is seen by four live cameras (``alpha`` on its own simulator, so a test can
switch that camera off alone, and ``bravo``, ``charlie``, ``delta``), by ``echo`` which is shared
live only during an emergency, and is near a camera whose owner named it with HTML and a doorbell
registered for its location only.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, Page

from rtcc.config import (
    CameraConfig,
    CamsimCameraConfig,
    ConsoleConfig,
    HubConfig,
    IncidentsConfig,
    Place,
    ProfileConfig,
    SecurityConfig,
    Settings,
    SharingLevel,
)
from rtcc.policy import Role
from server.app import create_app
from tests.fixtures.auth import MakeClient, TestUser, bearer, create_user
from tests.fixtures.browser import login_form
from tests.fixtures.camsim import CamsimFactory, CamsimHandle
from tests.fixtures.onvif import onvif_sim_factory  # noqa: F401 -- a fixture of test_ptz_browser

PIN = (39.80000, -89.64500)
ADDRESS = "401 S 2nd St"
"""An address in the department's address points, 10 m east of the pin."""
XSS_NAME = "<img src=x onerror=alert(1)>"
LIVE = ("alpha", "bravo", "charlie", "delta")
"""The cameras that see the pin and may be opened, nearest first: what auto-wall picks."""


def offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    return (lat + north_m / 111_195.0,
            lon + east_m / (111_195.0 * math.cos(math.radians(lat))))


def small_camera(path: str, width: int, height: int, kbps: int) -> CamsimCameraConfig:
    return CamsimCameraConfig(name=path, path=path, width=width, height=height, fps=15,
                              bitrate_kbps=kbps, gop_seconds=1.0, profile="main")


def pair(name: str) -> list[CamsimCameraConfig]:
    """A camera's main (640x360) and sub (320x180) streams."""
    return [small_camera(f"{name}-main", 640, 360, 500), small_camera(f"{name}-sub", 320, 180, 150)]


@dataclass
class ConsoleServer:
    client: TestClient[Any, Any]
    base: str
    alpha_sim: CamsimHandle
    others_sim: CamsimHandle
    admin: dict[str, str]
    analyst: TestUser


def camera(camera_id: str, name: str, north_m: float, east_m: float, heading: float,
           sim: CamsimHandle | None, path: str = "", *,
           sharing: SharingLevel = SharingLevel.LIVE_ALWAYS) -> CameraConfig:
    lat, lon = offset(*PIN, north_m, east_m)
    profiles: dict[Any, ProfileConfig] = {}
    if sim is not None:
        stem = path or camera_id
        profiles = {"main": ProfileConfig(url=sim.url(f"{stem}-main")),
                    "sub": ProfileConfig(url=sim.url(f"{stem}-sub"))}
    return CameraConfig(id=camera_id, name=name, lat=lat, lon=lon, heading=heading, fov=100,
                        range_m=150, sharing=sharing, owner=f"owner-{camera_id}",
                        profiles=profiles)


def console_settings(tmp_path: Path, alpha: CamsimHandle, others: CamsimHandle) -> Settings:
    cameras = [
        camera("alpha", "Alpha Ave & 1st, northbound", -30, 0, 0, alpha),
        camera("bravo", "Bravo Bank ATM", 0, 40, 270, others),
        camera("charlie", "Charlie's Diner, front door", 50, 0, 180, others),
        camera("delta", "Delta Hardware, parking", 0, -60, 90, others),
        camera("echo", "Echo Elementary, gate", -25, 25, 315, others,
               sharing=SharingLevel.LIVE_EMERGENCY),
        camera("xss", XSS_NAME, 120, 120, 45, others, path="delta"),
        camera("doorbell", "12 Oak St doorbell", 80, -20, 0, None,
               sharing=SharingLevel.REGISTRY_ONLY),
    ]
    points = tmp_path / "address-points.csv"
    east = offset(*PIN, 0, 10)
    points.write_text("number,street,city,lat,lon\n"
                      f"401,S 2nd St,Springfield,{east[0]:.6f},{east[1]:.6f}\n"
                      f"12,Oak St,Springfield,{PIN[0] + 0.01:.6f},{PIN[1]:.6f}\n")
    return Settings(
        data_dir=tmp_path / "data",
        store=f"sqlite:///{tmp_path / 'data' / 'catalog.sqlite3'}",
        security=SecurityConfig(allow_private_camera_hosts=["127.0.0.0/8"]),
        hub=HubConfig(close_after=2.0, start_timeout=8.0),
        cameras=cameras,
        console=ConsoleConfig(places=[Place(name="1 Test Corner", lat=PIN[0], lon=PIN[1])]),
        incidents=IncidentsConfig(address_points=points),
    )


@pytest.fixture
async def console_server(tmp_path: Path, camsim_factory: CamsimFactory,
                         bootstrap_token: str, make_client: MakeClient) -> ConsoleServer:
    alpha_sim = await camsim_factory(pair("alpha"))
    others_sim = await camsim_factory(pair("bravo") + pair("charlie") + pair("delta")
                                      + pair("echo"))
    app = create_app(console_settings(tmp_path, alpha_sim, others_sim))
    client = await make_client(app)
    base = str(client.make_url("")).rstrip("/")
    admin = bearer(bootstrap_token)
    analyst = await create_user(client, admin, Role.ANALYST, username="analyst7",
                                display_name="Analyst Seven")
    return ConsoleServer(client, base, alpha_sim, others_sim, admin, analyst)


@pytest.fixture
async def console_page(console_server: ConsoleServer, chromium: Browser) -> AsyncIterator[Page]:
    """The console, logged in through the login form, ready (map, panel and wall built)."""
    context = await chromium.new_context(viewport={"width": 1440, "height": 860})
    page = await context.new_page()
    page.set_default_timeout(20_000)
    try:
        server = console_server
        await login_form(page, server.base, server.analyst.username, server.analyst.password,
                         server.analyst.next_code())
        await page.wait_for_selector("body[data-ready=true]")
        yield page
    finally:
        await context.close()
