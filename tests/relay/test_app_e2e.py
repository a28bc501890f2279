"""End to end through the real application: a camsim RTSP camera, RTSP ingest, the security core
(bearer tokens, consent, audit) and the relay, watched by an aiortc viewer over WHEP."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

import relay
from camsim.runner import CameraOptions
from rtcc.access import CameraConsent
from rtcc.appkeys import CAMERA_DIRECTORY, HUB
from rtcc.config import (
    CameraConfig,
    CamsimCameraConfig,
    ProfileConfig,
    SecurityConfig,
    Settings,
    SharingLevel,
)
from rtcc.policy import Role
from server.app import create_app
from tests.fixtures.auth import MakeClient, bearer, role_headers
from tests.fixtures.camsim import CamsimFactory, CamsimHandle
from tests.relay.whep_client import WhepError, WhepViewer


class Directory:
    """What the catalog would answer for the test's cameras."""

    def __init__(self, consents: dict[str, CameraConsent]) -> None:
        self.consents = consents

    async def consent_of(self, camera_id: str) -> CameraConsent | None:
        return self.consents.get(camera_id)


def app_settings(tmp_path: Path, camsim: CamsimHandle) -> Settings:
    cameras = [
        CameraConfig(id=camera_id, name=f"camsim {path}", lat=40.0, lon=-75.0,
                     sharing=SharingLevel.LIVE_ALWAYS,
                     profiles={"main": ProfileConfig(url=camsim.url(path))})
        for camera_id, path in (("open", "open"), ("gop4", "gop4"))
    ]
    return Settings(data_dir=tmp_path / "data", cameras=cameras,
                    security=SecurityConfig(allow_private_camera_hosts=["127.0.0.0/8"]))


async def start(tmp_path: Path, camsim: CamsimHandle,
                make_client: MakeClient) -> tuple[TestClient[Any, Any], str]:
    app = create_app(app_settings(tmp_path, camsim))
    if not any(getattr(r, "canonical", "") == "/whep/{camera_id}"
               for r in app.router.resources()):
        relay.add_routes(app)
    app[CAMERA_DIRECTORY] = Directory({
        camera_id: CameraConsent(camera_id, "shop1", SharingLevel.LIVE_ALWAYS)
        for camera_id in ("open", "gop4")
    })
    client = await make_client(app)
    return client, str(client.make_url("")).rstrip("/")


async def test_analyst_watches_a_camsim_camera_through_the_real_app(
    tmp_path: Path, camsim: CamsimHandle, bootstrap_token: str, make_client: MakeClient
) -> None:
    client, base = await start(tmp_path, camsim, make_client)
    admin = bearer(bootstrap_token)
    _, analyst = await role_headers(client, admin, Role.ANALYST)
    _, owner = await role_headers(client, admin, Role.OWNER, owner_id="shop2")
    async with aiohttp.ClientSession() as http:
        anonymous = WhepViewer(base, "open")
        try:
            with pytest.raises(WhepError) as refused:
                await anonymous.connect(http)
            assert refused.value.status == 401
        finally:
            await anonymous.close()
        viewer = WhepViewer(base, "open", headers=analyst,
                            query={"purpose": "incident 24-1187"})
        try:
            await viewer.connect(http)
            await viewer.wait_frames(20, timeout=20)
            assert viewer.decoded.first_at is not None
            print(f"camsim through the real app: first frame "
                  f"{(viewer.decoded.first_at - viewer.posted_at) * 1000:.0f} ms after POST")
            response = await client.get("/api/relay/sessions", headers=analyst)
            assert response.status == 200
            (session,) = (await response.json())["sessions"]
            assert session["purpose"] == "incident 24-1187"
            assert (await client.get("/api/relay/sessions", headers=owner)).status == 403
            assert await viewer.delete(http) == 200
        finally:
            await viewer.close()
    hub = client.app[HUB]
    assert hub.get("open", "main").subscriber_count == 0


async def test_camsim_4s_gop_camera_decodes_from_the_gop_cache(
    tmp_path: Path, camsim: CamsimHandle, bootstrap_token: str, make_client: MakeClient
) -> None:
    client, base = await start(tmp_path, camsim, make_client)
    _, analyst = await role_headers(client, bearer(bootstrap_token), Role.ANALYST)
    stream = client.app[HUB].get("gop4", "main")
    holder = await stream.subscribe("warm-up", wait=True)  # the camera is live
    try:
        async with asyncio.timeout(10):
            while stream.frames_in % 60 < 15:  # about 1 s into a 4 s GOP
                await asyncio.sleep(0.02)
        keyframes = stream.keyframes_in
        async with aiohttp.ClientSession() as http:
            viewer = WhepViewer(base, "gop4", headers=analyst, query={"purpose": "gop test"})
            try:
                await viewer.connect(http)
                await viewer.wait_first_frame(timeout=10)
                assert stream.keyframes_in == keyframes  # no new camera keyframe was needed
                assert viewer.decoded.first_at is not None
                print(f"camsim 4 s GOP: first frame "
                      f"{(viewer.decoded.first_at - viewer.posted_at) * 1000:.0f} ms after POST")
            finally:
                await viewer.close()
    finally:
        holder.close("test done")


async def test_what_cannot_pass_through_is_reported(
    tmp_path: Path, camsim_factory: CamsimFactory, bootstrap_token: str, make_client: MakeClient
) -> None:
    cameras = [
        CamsimCameraConfig(name=path, path=path, width=320, height=240, fps=15,
                           bitrate_kbps=300, gop_seconds=1.0, profile="main")
        for path in ("hevc", "bframes", "aac")
    ]
    sim = await camsim_factory(cameras, options={
        "hevc": CameraOptions(codec="h265"),
        "bframes": CameraOptions(bframes=2),
        "aac": CameraOptions(audio="aac"),
    })
    settings = Settings(
        data_dir=tmp_path / "data",
        security=SecurityConfig(allow_private_camera_hosts=["127.0.0.0/8"]),
        cameras=[CameraConfig(id=c.path, name=c.name, lat=40.0, lon=-75.0,
                              sharing=SharingLevel.LIVE_ALWAYS,
                              profiles={"main": ProfileConfig(url=sim.url(c.path))})
                 for c in cameras],
    )
    app = create_app(settings)
    if not any(getattr(r, "canonical", "") == "/whep/{camera_id}"
               for r in app.router.resources()):
        relay.add_routes(app)
    app[CAMERA_DIRECTORY] = Directory({
        c.path: CameraConsent(c.path, "shop1", SharingLevel.LIVE_ALWAYS) for c in cameras
    })
    client = await make_client(app)
    base = str(client.make_url("")).rstrip("/")
    _, analyst = await role_headers(client, bearer(bootstrap_token), Role.ANALYST)
    async with aiohttp.ClientSession() as http:
        hevc = WhepViewer(base, "hevc", headers=analyst, query={"purpose": "codec test"})
        try:
            with pytest.raises(WhepError) as refused:
                await hevc.connect(http)
            assert refused.value.status == 415
            assert "h265" in refused.value.text.lower()
        finally:
            await hevc.close()
        for camera, words in (("bframes", "B-frames"), ("aac", "aac")):
            viewer = WhepViewer(base, camera, headers=analyst, query={"purpose": "codec test"})
            try:
                await viewer.connect(http)
                warning = viewer.response_headers.get(relay.whep.WARNING_HEADER, "")
                assert words.lower() in warning.lower(), warning
                await viewer.wait_first_frame(timeout=15)
            finally:
                await viewer.close()
