"""Review of the live media path through the real application: a WHEP view needs a purpose,
is audited before the answer leaves, and belongs to the person who opened it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from rtcc.appkeys import HUB
from rtcc.hub import StreamSettings
from rtcc.policy import Role
from server.app import create_app
from tests.fixtures.auth import MakeClient, bearer, role_headers, security_settings
from tests.relay.clip import Clip, ClipSource, make_clip
from tests.relay.whep_client import WhepError, WhepViewer

CAMERA = "review-cam"


@dataclass
class Wall:
    client: TestClient[Any, Any]
    base: str
    admin: dict[str, str]
    alice: dict[str, str]
    bob: dict[str, str]


@pytest.fixture(scope="module")
def review_clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    return make_clip(tmp_path_factory.mktemp("review-clip") / "clip.h264", fps=15, gop=15,
                     seconds=2)


@pytest.fixture
async def wall(tmp_path: Path, bootstrap_token: str, make_client: MakeClient,
               review_clip: Clip) -> Wall:
    app = create_app(security_settings(tmp_path))
    client = await make_client(app)
    admin = bearer(bootstrap_token)
    created = await client.post("/api/cameras", headers=admin, json={
        "id": CAMERA, "name": "Review camera", "lat": 39.8, "lon": -89.6,
        "sharing": "live_always"})
    assert created.status == 201, await created.text()
    app[HUB].register(CAMERA, "main", lambda: ClipSource(review_clip),
                      StreamSettings(close_after=0.5, start_timeout=10))
    _, alice = await role_headers(client, admin, Role.ANALYST)
    _, bob = await role_headers(client, admin, Role.ANALYST)
    base = str(client.make_url("")).rstrip("/")
    return Wall(client, base, admin, alice, bob)


async def _audit(wall: Wall, action: str) -> list[dict[str, Any]]:
    response = await wall.client.get("/api/audit", headers=wall.admin,
                                     params={"camera": CAMERA, "action": action})
    entries: list[dict[str, Any]] = (await response.json())["entries"]
    return entries


async def test_a_live_view_needs_a_purpose_and_is_audited_first(wall: Wall) -> None:
    async with aiohttp.ClientSession() as http:
        nameless = WhepViewer(wall.base, CAMERA, headers=wall.alice)
        with pytest.raises(WhepError) as refused:
            await nameless.connect(http)
        await nameless.close()
        assert refused.value.status == 400
        assert "purpose" in refused.value.text
        viewer = WhepViewer(wall.base, CAMERA, headers=wall.alice,
                            query={"purpose": "review: robbery in progress"})
        try:
            await viewer.connect(http)
            started = await _audit(wall, "view.start")
            assert [e["outcome"] for e in started] == ["ok", "denied"]  # newest first
            assert started[0]["details"]["purpose"] == "review: robbery in progress"
            await viewer.wait_first_frame(15)
            assert await viewer.delete(http) == 200
        finally:
            await viewer.close()
    stopped = await _audit(wall, "view.stop")
    assert len(stopped) == 1


async def test_only_the_viewer_can_end_a_live_view(wall: Wall) -> None:
    async with aiohttp.ClientSession() as http:
        viewer = WhepViewer(wall.base, CAMERA, headers=wall.alice,
                            query={"purpose": "review"})
        try:
            await viewer.connect(http)
            assert viewer.location is not None
            session_id = viewer.location.rsplit("/", 1)[1]
            listing = await wall.client.get("/api/relay/sessions", headers=wall.bob)
            shown = await listing.text()
            ended = await wall.client.delete(viewer.location, headers=wall.bob)
            assert ended.status in (403, 404)
            assert session_id not in shown
        finally:
            await viewer.close()
