"""H.265 cameras: RFC 7798 packetization, H.265 pass-through, the opt-in H.264 transcode, the
refusal that names the option, and the recording that keeps the camera's H.265.

Debian's Chromium here offers no H.265 receiver (``RTCRtpReceiver.getCapabilities('video')``
lists VP8, VP9, H.264 and AV1), and aiortc cannot decode H.265. Pass-through is therefore received
by an aiortc peer taught to offer H265 (ICE, DTLS and SRTP real), whose RTP payloads the test
depacketizes itself (RFC 7798, written independently of the relay) and FFmpeg decodes.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import aiohttp
import av
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc import codecs as aiortc_codecs
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpCodecCapability, RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

import relay
from camsim.runner import CameraOptions
from catalog.errors import FieldError
from catalog.model import Profile, camera_extra
from catalog.validate import parse_camera
from relay.negotiation import inspect_offer
from relay.packets import MAX_PAYLOAD, packetize_frame
from rtcc import bitstream
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
from rtcc.media import EncodedFrame
from rtcc.policy import Role
from server.app import create_app
from tests.fixtures.auth import MakeClient, bearer, role_headers
from tests.fixtures.camsim import CamsimFactory
from tests.fuzz.test_sdp_offer import VALID_OFFER
from tests.relay.test_app_e2e import Directory
from tests.relay.whep_client import WhepError, WhepViewer


def _h265_clip(path: Path) -> list[bytes]:
    """Two seconds of 320x240 H.265 as Annex-B access units (a keyframe every 15)."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15",
         "-t", "2", "-c:v", "libx265", "-x265-params", "bframes=0:keyint=15:log-level=error",
         "-f", "hevc", str(path)], check=True, timeout=60,
    )
    parser = av.CodecContext.create("hevc", "r")
    data = path.read_bytes()
    units = [bytes(packet) for packet in parser.parse(data)]
    units += [bytes(packet) for packet in parser.parse(b"")]
    return units


def _depacketize(payloads: tuple[bytes, ...]) -> bytes:
    """RFC 7798 without DONL: single NAL unit packets, APs (type 48) and FUs (type 49)."""
    out = bytearray()
    fragment = bytearray()
    for payload in payloads:
        kind = (payload[0] >> 1) & 0x3F
        if kind == 48:
            position = 2
            while position < len(payload):
                size = int.from_bytes(payload[position:position + 2], "big")
                out += b"\x00\x00\x00\x01" + payload[position + 2:position + 2 + size]
                position += 2 + size
        elif kind == 49:
            fu = payload[2]
            if fu & 0x80:
                original = (payload[0] & 0x81) | ((fu & 0x3F) << 1)
                fragment = bytearray((original, payload[1]))
            fragment += payload[3:]
            if fu & 0x40:
                out += b"\x00\x00\x00\x01" + fragment
        else:
            out += b"\x00\x00\x00\x01" + payload
    return bytes(out)


def test_h265_payloads_decode_after_an_independent_depacketizer(tmp_path: Path) -> None:
    units = _h265_clip(tmp_path / "clip.h265")
    decoder = av.CodecContext.create("hevc", "r")
    decoded = 0
    kinds: set[int] = set()
    for index, unit in enumerate(units):
        frame = EncodedFrame("h265", unit, index * 6000,
                             bitstream.is_keyframe(unit, "h265"), 0.0)
        packed = packetize_frame(frame)
        assert all(len(p) <= MAX_PAYLOAD for p in packed.payloads)
        assert not packed.missing_parameter_sets
        kinds.update((p[0] >> 1) & 0x3F for p in packed.payloads)
        decoded += len(decoder.decode(av.Packet(_depacketize(packed.payloads))))
    decoded += len(decoder.decode(None))
    assert 48 in kinds  # parameter sets aggregated
    assert 49 in kinds  # keyframes fragmented
    assert decoded == len(units)


def _with_h265(offer: str) -> str:
    """The offer with an H.265 entry added to its video section (what an H.265-capable
    browser lists)."""
    lines = offer.split("\r\n")
    for i, line in enumerate(lines):
        if line.startswith("m=video"):
            lines[i] = line + " 49"
    at = max(i for i, line in enumerate(lines) if line.startswith("a=rtpmap:"))
    lines[at + 1:at + 1] = ["a=rtpmap:49 H265/90000", "a=rtcp-fb:49 nack",
                            "a=rtcp-fb:49 nack pli",
                            "a=fmtp:49 level-id=93;profile-id=1;tier-flag=0;tx-mode=SRST"]
    return "\r\n".join(lines)


async def test_h265_camera_transcoded_for_h264_viewers_refused_without_the_option(
    tmp_path: Path, camsim_factory: CamsimFactory, bootstrap_token: str, make_client: MakeClient
) -> None:
    cam = CamsimCameraConfig(name="hevc", path="hevc", width=640, height=360, fps=15,
                             bitrate_kbps=400, gop_seconds=1.0, profile="main")
    sim = await camsim_factory([cam], options={"hevc": CameraOptions(codec="h265")})
    url = sim.url("hevc")
    settings = Settings(
        data_dir=tmp_path / "data",
        security=SecurityConfig(allow_private_camera_hosts=["127.0.0.0/8"]),
        cameras=[CameraConfig(id="hevc", name="hevc", lat=40.0, lon=-75.0,
                              sharing=SharingLevel.LIVE_ALWAYS, record=True,
                              profiles={"main": ProfileConfig(url=url),
                                        "sub": ProfileConfig(url=url, transcode_h264=True)})],
    )
    app = create_app(settings)
    app[CAMERA_DIRECTORY] = Directory({
        "hevc": CameraConsent("hevc", "shop1", SharingLevel.LIVE_ALWAYS)})
    client = await make_client(app)
    base = str(client.make_url("")).rstrip("/")
    _, analyst = await role_headers(client, bearer(bootstrap_token), Role.ANALYST)
    query = {"purpose": "codec test"}
    async with aiohttp.ClientSession() as http:
        # The main profile has no transcode: an H.264-only viewer is told what to change.
        refused = WhepViewer(base, "hevc", profile="main", headers=analyst, query=query)
        try:
            with pytest.raises(WhepError) as error:
                await refused.connect(http)
            assert error.value.status == 415
            assert "h265" in error.value.text.lower()
            assert "transcode_h264: true" in error.value.text
            assert "main profile" in error.value.text
        finally:
            await refused.close()

        # The sub profile is transcoded: the same kind of viewer decodes H.264.
        viewer = WhepViewer(base, "hevc", profile="sub", headers=analyst, query=query)
        try:
            await viewer.connect(http)
            assert re.search(r"a=rtpmap:\d+ H264/90000", viewer.answer)
            assert "H265" not in viewer.answer
            warning = viewer.response_headers.get(relay.whep.WARNING_HEADER, "")
            assert "transcoded to H.264" in warning, warning
            await viewer.wait_frames(15, timeout=30)
            transcoded = app[HUB].get("hevc", "sub.h264")
            assert transcoded.media_info.video_codec == "h264"
            assert transcoded.media_info.width == 640

            # A second viewer shares the running encoder: the transcode was started once.
            second = WhepViewer(base, "hevc", profile="sub", headers=analyst, query=query)
            try:
                await second.connect(http)
                await second.wait_frames(10, timeout=30)
            finally:
                await second.close()
            assert transcoded.starts == 1
            assert app[HUB].get("hevc", "sub").starts == 1  # the sub profile is pulled once

            # An H.265-capable viewer of the same camera gets H.265 itself, not the transcode.
            direct = WhepViewer(base, "hevc", profile="main", headers=analyst, query=query)
            direct.rewrite_offer = _with_h265
            try:
                with pytest.raises(Exception):  # noqa: B017,PT011 -- aiortc cannot apply H265
                    await direct.connect(http)
                assert direct.location is not None, "the relay answered the H.265 offer"
                assert re.search(r"a=rtpmap:49 H265/90000", direct.answer), direct.answer
                assert "H264" not in direct.answer
                assert await direct.delete(http) == 200
            finally:
                await direct.close()
        finally:
            await viewer.close()
    # The recording holds the camera's own H.265, not the transcode.
    codec = await _recorded_codec(tmp_path / "data")
    assert codec == "hevc"


async def _recorded_codec(data_dir: Path) -> str:
    """The codec FFmpeg finds in the first recording segment with data (polled), and checks the
    segment is named for H.265."""
    async with asyncio.timeout(30):
        while True:
            segments = [path for path in data_dir.rglob("*.h26*")
                        if path.suffix != ".idx" and path.stat().st_size > 4096]
            if segments:
                break
            await asyncio.sleep(0.2)
    probe = await asyncio.create_subprocess_exec(
        # No -f: FFmpeg recognises the format from the bytes themselves.
        "ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name", "-of", "csv=p=0",
        str(segments[0]), stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(probe.communicate(), 30)
    assert ".h265" in segments[0].name, segments[0].name
    return out.decode().strip()


def test_an_offer_listing_h265_is_recognised() -> None:
    offer = _with_h265(VALID_OFFER)
    offered = inspect_offer(offer)
    assert offered.h265
    assert offered.h265[0].mimeType == "video/H265"
    assert offered.h264 == "42e01f"



H265_CODEC = RTCRtpCodecParameters(
    mimeType="video/H265", clockRate=90000, payloadType=49,
    rtcpFeedback=[RTCRtcpFeedback(type="nack"), RTCRtcpFeedback(type="nack", parameter="pli")],
)


async def test_h265_pass_through_reaches_a_real_peer_and_decodes(
    tmp_path: Path, camsim_factory: CamsimFactory, bootstrap_token: str, make_client: MakeClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A WebRTC peer (aiortc taught to offer H265; ICE, DTLS and SRTP real) that offers only
    H.265 receives the camera's H.265 over RTP; the test depacketizes and FFmpeg decodes it."""
    cam = CamsimCameraConfig(name="hevc", path="hevc", width=640, height=360, fps=15,
                             bitrate_kbps=400, gop_seconds=1.0, profile="main")
    sim = await camsim_factory([cam], options={"hevc": CameraOptions(codec="h265")})
    settings = Settings(
        data_dir=tmp_path / "data",
        security=SecurityConfig(allow_private_camera_hosts=["127.0.0.0/8"]),
        cameras=[CameraConfig(id="hevc", name="hevc", lat=40.0, lon=-75.0,
                              sharing=SharingLevel.LIVE_ALWAYS,
                              profiles={"main": ProfileConfig(url=sim.url("hevc"))})],
    )
    app = create_app(settings)
    app[CAMERA_DIRECTORY] = Directory({
        "hevc": CameraConsent("hevc", "shop1", SharingLevel.LIVE_ALWAYS)})
    client = await make_client(app)
    base = str(client.make_url("")).rstrip("/")
    _, analyst = await role_headers(client, bearer(bootstrap_token), Role.ANALYST)

    # The viewer's aiortc lists H265 (aiortc cannot decode it: the test keeps the packets).
    monkeypatch.setitem(aiortc_codecs.CODECS, "video",
                        [*aiortc_codecs.CODECS["video"], H265_CODEC])
    pc = RTCPeerConnection()
    packets: list[tuple[int, bool, bytes]] = []
    try:
        transceiver = pc.addTransceiver("video", direction="recvonly")
        transceiver.setCodecPreferences([RTCRtpCodecCapability(
            mimeType="video/H265", clockRate=90000)])

        async def keep(packet: RtpPacket, arrival_time_ms: int) -> None:  # noqa: ARG001
            packets.append((packet.timestamp, packet.marker == 1, packet.payload))

        # The receiver's RTP entry point: the packets arrive decrypted, before any decoder.
        transceiver.receiver._handle_rtp_packet = keep  # type: ignore[method-assign]  # noqa: SLF001
        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp
        assert "H265/90000" in offer
        assert "H264" not in offer
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/whep/hevc", data=offer,
                                 params={"purpose": "codec test"},
                                 headers={"Content-Type": "application/sdp", **analyst},
                                 timeout=aiohttp.ClientTimeout(total=30)) as response:
                answer = await response.text()
                assert response.status == 201, answer
            assert re.search(r"a=rtpmap:49 H265/90000", answer)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            async with asyncio.timeout(30):
                while sum(marker for _, marker, _ in packets) < 20:
                    await asyncio.sleep(0.1)
    finally:
        await pc.close()

    decoder = av.CodecContext.create("hevc", "r")
    decoded = 0
    frame: list[bytes] = []
    for _, marker, payload in packets:
        frame.append(payload)
        if marker:
            decoded += len(decoder.decode(av.Packet(_depacketize(tuple(frame)))))
            frame = []
    assert decoded >= 15


def test_transcode_option_is_validated_and_kept_by_the_catalog() -> None:
    base = {"id": "door", "name": "Door", "lat": 40.0, "lon": -75.0}
    camera = parse_camera({**base, "profiles": {
        "sub": {"url": "rtsp://10.0.0.20/stream2", "transcode_h264": True}}}, None)
    assert camera.profiles["sub"].transcode_h264
    stored = camera_extra(camera)["profiles"]["sub"]
    assert Profile(**stored).transcode_h264  # how the store reads it back
    # An update that leaves the option out keeps it; a wrong type is refused with the field named.
    updated = parse_camera({**base, "profiles": {"sub": {"url": "rtsp://10.0.0.20/s2"}}}, None,
                           previous=camera)
    assert updated.profiles["sub"].transcode_h264
    with pytest.raises(FieldError) as error:
        parse_camera({**base, "profiles": {"sub": {"url": "rtsp://10.0.0.20/s2",
                                                   "transcode_h264": "yes"}}}, None)
    assert "profiles.sub.transcode_h264" in str(error.value)
