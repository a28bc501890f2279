"""WHEP over HTTP: status codes, headers and plain-text reasons, with real aiortc offers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender

from relay.settings import RelaySettings
from rtcc.hub import FrameSink, StreamSettings
from tests.relay.clip import Clip
from tests.relay.conftest import RelayServer, start_server
from tests.relay.whep_client import WhepError, WhepViewer, make_offer


async def aiortc_offer(codecs: str = "any") -> tuple[str, RTCPeerConnection]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    if codecs == "vp8":
        transceiver = pc.addTransceiver("video", direction="recvonly")
        transceiver.setCodecPreferences([
            c for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType.lower() in ("video/vp8", "video/rtx")
        ])
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp), pc
    return await make_offer(pc), pc


async def post(http: aiohttp.ClientSession, url: str, body: str,
               content_type: str = "application/sdp",
               headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    async with http.post(url, data=body.encode(),
                         headers={"Content-Type": content_type, **(headers or {})}) as r:
        return r.status, await r.text(), dict(r.headers)


class UnreachableSource:
    async def start(self, sink: FrameSink) -> None:  # noqa: ARG002 -- the Source protocol
        raise OSError("connection refused by 192.0.2.99:554")

    async def aclose(self) -> None:
        return None

    def stats(self) -> dict[str, object]:
        return {}


@pytest.fixture
async def two_cameras(small_clip: Clip) -> AsyncIterator[RelayServer]:
    srv, runner = await start_server(
        {"cam1": {"main": small_clip, "sub": small_clip}, "cam2": {"main": small_clip}},
        RelaySettings(cors_origins=("https://wall.example",)),
    )
    srv.hub.register("down", "main", UnreachableSource, StreamSettings(start_timeout=2))
    try:
        yield srv
    finally:
        await runner.cleanup()


async def test_answer_is_h264_mode_1_only_with_rtx(
    two_cameras: RelayServer, http: aiohttp.ClientSession
) -> None:
    viewer = WhepViewer(two_cameras.url, "cam1")
    try:
        await viewer.connect(http)
        answer = viewer.answer
        rtpmaps = [line for line in answer.splitlines() if line.startswith("a=rtpmap:")]
        assert [line.split()[1] for line in rtpmaps] == ["H264/90000", "rtx/90000"]
        assert "VP8" not in answer
        fmtp = next(line for line in answer.splitlines() if "packetization-mode" in line)
        assert "packetization-mode=1" in fmtp
        assert "profile-level-id=42e01f" in fmtp
        assert "level-asymmetry-allowed=1" in fmtp
        assert "a=end-of-candidates" in answer
        assert viewer.location is not None
        assert viewer.location.startswith("/whep/cam1/")
        assert len(viewer.location.rsplit("/", 1)[1]) >= 22
        await viewer.wait_first_frame()
    finally:
        await viewer.close()


async def test_malformed_offers_get_400_and_the_server_keeps_serving(
    two_cameras: RelayServer, http: aiohttp.ClientSession
) -> None:
    url = f"{two_cameras.url}/whep/cam1"
    good, pc = await aiortc_offer()
    await pc.close()
    broken = [
        "hello",
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\n"
        "a=fmtp:96 packetization-mode=1\r\n",
        good.replace("a=fingerprint:", "a=x-fingerprint:"),
        good.replace("a=ice-ufrag:", "a=x-ufrag:").replace("a=ice-pwd:", "a=x-pwd:"),
        good.replace("m=video ", "m=video nine", 1),
        good.replace("a=fingerprint:sha-256 ", "a=fingerprint:sha-256 zz", 1),
        good.replace("c=IN IP4", "c=IN IPX"),
    ]
    for body in broken:
        status, text, _ = await post(http, url, body)
        assert status == 400, (status, text, body)
        assert text.startswith("the ")
    status, text, _ = await post(http, url, good, content_type="text/plain")
    assert status == 415
    assert "application/sdp" in text
    status, text, _ = await post(http, url, "v=0\r\n" + "a=x\r\n" * 20000)
    assert status == 413
    assert len(two_cameras.registry) == 0
    assert two_cameras.access.open_views == 0
    viewer = WhepViewer(two_cameras.url, "cam1")
    try:
        await viewer.connect(http)
        await viewer.wait_first_frame()
    finally:
        await viewer.close()


async def test_viewer_that_cannot_play_h264_gets_415(
    two_cameras: RelayServer, http: aiohttp.ClientSession
) -> None:
    offer, pc = await aiortc_offer("vp8")
    await pc.close()
    status, text, _ = await post(http, f"{two_cameras.url}/whep/cam1", offer)
    assert status == 415
    assert "H.264" in text
    assert "VP8" in text
    audio_only = offer.replace("m=video", "m=audio")
    status, text, _ = await post(http, f"{two_cameras.url}/whep/cam1", audio_only)
    assert status == 415
    assert "no video" in text


async def test_unknown_camera_is_404_and_its_view_is_closed(
    two_cameras: RelayServer, http: aiohttp.ClientSession
) -> None:
    offer, pc = await aiortc_offer()
    await pc.close()
    status, text, _ = await post(http, f"{two_cameras.url}/whep/nosuchcam", offer)
    assert status == 404
    assert "nosuchcam" in text
    assert len(two_cameras.access.closed) == len(two_cameras.access.opened) == 1


async def test_refused_view_is_403_before_any_peer_connection(
    two_cameras: RelayServer, http: aiohttp.ClientSession
) -> None:
    two_cameras.access.refuse = web.HTTPForbidden
    offer, pc = await aiortc_offer()
    await pc.close()
    status, text, _ = await post(http, f"{two_cameras.url}/whep/cam1", offer)
    assert status == 403
    assert "not allowed" in text
    assert len(two_cameras.registry) == 0
    assert two_cameras.hub.get("cam1", "main").subscriber_count == 0


async def test_unreachable_camera_is_503_with_the_reason(
    two_cameras: RelayServer, http: aiohttp.ClientSession
) -> None:
    offer, pc = await aiortc_offer()
    await pc.close()
    status, text, headers = await post(http, f"{two_cameras.url}/whep/down", offer)
    assert status == 503
    assert "connection refused" in text
    assert headers.get("Retry-After") == "5"
    assert two_cameras.access.open_views == 0


async def test_profiles_sub_is_used_when_present_and_main_otherwise(
    two_cameras: RelayServer, http: aiohttp.ClientSession
) -> None:
    viewers = [WhepViewer(two_cameras.url, "cam1", profile="sub"),
               WhepViewer(two_cameras.url, "cam2", profile="sub")]
    try:
        for viewer in viewers:
            await viewer.connect(http)
        profiles = {(g.camera_id, g.profile) for g in two_cameras.access.opened}
        assert profiles == {("cam1", "sub"), ("cam2", "main")}
        assert two_cameras.hub.get("cam1", "sub").subscriber_count == 1
        assert two_cameras.hub.get("cam2", "main").subscriber_count == 1
        with pytest.raises(WhepError) as refused:
            await WhepViewer(two_cameras.url, "cam1", profile="hd").connect(http)
        assert refused.value.status == 400
    finally:
        for viewer in viewers:
            await viewer.close()


async def test_options_patch_delete_and_cors(
    two_cameras: RelayServer, http: aiohttp.ClientSession
) -> None:
    url = f"{two_cameras.url}/whep/cam1"
    async with http.options(url, headers={"Origin": "https://wall.example"}) as r:
        assert r.status == 204
        assert r.headers["Accept-Post"] == "application/sdp"
        assert r.headers["Access-Control-Allow-Origin"] == "https://wall.example"
        assert "POST" in r.headers["Access-Control-Allow-Methods"]
        assert "Location" in r.headers["Access-Control-Expose-Headers"]
    async with http.options(url, headers={"Origin": "https://evil.example"}) as r:
        assert r.status == 204
        assert "Access-Control-Allow-Origin" not in r.headers
    viewer = WhepViewer(two_cameras.url, "cam1")
    try:
        await viewer.connect(http)
        assert viewer.location is not None
        session_url = f"{two_cameras.url}{viewer.location}"
        async with http.patch(session_url, data="a=candidate:1 1 udp 1 10.0.0.1 9 typ host",
                              headers={"Content-Type": "application/trickle-ice-sdpfrag"}) as r:
            assert r.status == 405
            assert "trickle" in await r.text()
        async with http.delete(f"{two_cameras.url}/whep/cam2/"
                               f"{viewer.location.rsplit('/', 1)[1]}") as r:
            assert r.status == 404  # the session belongs to another camera
        assert await viewer.delete(http) == 200
        assert await viewer.delete(http) == 404
        assert len(two_cameras.registry) == 0
        (_grant, reason), = two_cameras.access.closed
        assert reason == "viewer ended the session"
    finally:
        await viewer.close()


async def test_hostile_offers_get_400_with_a_reason_and_no_traceback(
    two_cameras: RelayServer, http: aiohttp.ClientSession
) -> None:
    url = f"{two_cameras.url}/whep/cam1"
    good, pc = await aiortc_offer()
    await pc.close()
    lines = good.splitlines()
    hostile = [
        good.replace("a=recvonly", "a=recvonly\x00"),
        good.replace("a=ice-ufrag:", "a=ice-ufrag:\x00", 1),
        good.replace("a=rtpmap:", "a=rtpmap:\x01", 1),
        good.replace("a=mid:0", "a=mid:" + "x" * 50_000, 1),
        "\r\n".join(line for line in lines if not line.startswith("m=")) + "\r\n",
        "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",
        good.replace("a=fingerprint:sha-256 ", "a=fingerprint:md5 ", 1),
        good.replace("a=fingerprint:sha-256 ", "a=fingerprint:sha-256 AB:", 1),
        good + "a=candidate:1 1 UDP notanumber 1.2.3.4 5 typ host\r\n",
        re.sub(r"(?m)^(m=video \d+ UDP/TLS/RTP/SAVPF) ", r"\1 x ", good, count=1),
    ]
    assert all(body != good for body in hostile)
    for body in hostile:
        status, text, _ = await post(http, url, body)
        assert status == 400, (status, text[:200], body[:200])
        assert text.startswith("the "), text
        assert "Traceback" not in text
    # Bytes that are not UTF-8 at all.
    async with http.post(url, data=good.encode() + b"\xff\xfe\x00",
                         headers={"Content-Type": "application/sdp"}) as response:
        assert response.status == 400
        assert "UTF-8" in await response.text()
    assert len(two_cameras.registry) == 0
    assert two_cameras.access.open_views == 0
    viewer = WhepViewer(two_cameras.url, "cam1")
    try:
        await viewer.connect(http)
        await viewer.wait_first_frame()
    finally:
        await viewer.close()


async def test_an_answered_viewer_that_never_connects_is_closed_and_counted(
    small_clip: Clip, http: aiohttp.ClientSession
) -> None:
    srv, runner = await start_server({"cam1": {"main": small_clip}},
                                     RelaySettings(connect_timeout=1.5))
    try:
        offer, pc = await aiortc_offer()
        await pc.close()  # the answer is never applied: ICE and DTLS never start
        status, answer, _ = await post(http, f"{srv.url}/whep/cam1", offer)
        assert status == 201, answer
        assert len(srv.registry) == 1
        for _ in range(100):
            if len(srv.registry) == 0:
                break
            await asyncio.sleep(0.05)
        assert len(srv.registry) == 0
        assert srv.registry.never_connected == 1
        assert srv.registry.stats()["never_connected"] == 1
        assert srv.access.open_views == 0
        assert "did not connect within 1.5 s" in srv.access.closed[0][1]
    finally:
        await runner.cleanup()
