"""RtspSource against the GStreamer camera simulator, through a real StreamHub."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

import pytest

from camsim.runner import CameraOptions
from ingest.handoff import LoopHandoff
from ingest.rtsp import RtspSource, RtspTarget
from rtcc import bitstream
from rtcc.config import CamsimCameraConfig, IngestConfig
from rtcc.errors import SourceUnavailable, UnsafeUrl
from rtcc.hub import StreamHub, StreamSettings
from rtcc.media import EncodedFrame, MediaInfo, StreamState
from tests.fixtures.camsim import SECURE_PASSWORD, CamsimFactory, CamsimHandle
from tests.ingest.helpers import FAST, decode_keyframe, record_states, register, wait_until


async def _frames(sub_iter: object, count: int, timeout: float = 10.0) -> list[EncodedFrame]:
    frames: list[EncodedFrame] = []
    async with asyncio.timeout(timeout):
        async for frame in sub_iter:  # type: ignore[attr-defined]
            frames.append(frame)
            if len(frames) >= count:
                break
    return frames


async def test_frames_arrive_as_decodable_annexb_access_units(
    camsim: CamsimHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with StreamHub() as hub:
        stream = register(hub, camsim.target("open"))
        async with await stream.subscribe("test") as sub:
            frames = await _frames(sub, 20)
        first = frames[0]
        assert first.keyframe
        assert first.discontinuity
        assert not any(f.discontinuity for f in frames[1:])
        assert first.codec == "h264"
        assert bitstream.nal_types(first.data)[:3] == [
            bitstream.NalType.AUD, bitstream.NalType.SPS, bitstream.NalType.PPS
        ]
        assert decode_keyframe(first) == (640, 360)
        pts = [f.pts for f in frames]
        assert pts == sorted(pts)
        assert pts[1] - pts[0] == 6000  # 15 fps on the 90 kHz clock
        info = stream.media_info
        assert (info.video_codec, info.width, info.height) == ("h264", 640, 360)
        assert info.fps == 15.0
        assert info.profile == "high"
        assert not info.has_b_frames
        assert info.warnings == ()
        source = stream.stats()["source"]
        assert isinstance(source, dict)
        assert source["url"] == camsim.url("open")
        assert source["connects"] == 1
        assert source["packets"] >= 20
        # camsim repeats SPS/PPS before each slice: FFmpeg's parser splits its keyframes, which
        # are joined again; the native client reassembles whole access units from RTP.
        assert source["client"] == "native"
        assert source["keyframes_joined"] == 0
    assert "connected to rtsp://127.0.0.1" in caplog.text


async def test_digest_credentials_with_reserved_characters(
    camsim: CamsimHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with StreamHub() as hub:
        stream = register(hub, camsim.target("secure"))
        async with await stream.subscribe("test") as sub:
            frames = await _frames(sub, 3)
        assert decode_keyframe(frames[0]) == (640, 360)
        assert stream.media_info.profile == "main"
        assert SECURE_PASSWORD not in repr(camsim.target("secure"))
        assert SECURE_PASSWORD not in str(stream.stats())
    assert SECURE_PASSWORD not in caplog.text


async def test_wrong_password_is_an_error_with_the_401_reason(
    camsim: CamsimHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    target = RtspTarget(camsim.url("secure"), "viewer", "not-the-Password-42")
    async with StreamHub() as hub:
        states = record_states(hub)
        stream = register(hub, target)
        with pytest.raises(SourceUnavailable, match=r"wrong user name or password \(RTSP 401\)"):
            await stream.subscribe("test")
        assert stream.state is StreamState.ERROR
        assert stream.reason == (
            "wrong user name or password (RTSP 401): check the camera's credentials"
        )
        assert (StreamState.ERROR, stream.reason) in states
        # Without credentials at all, the reason says so.
        anonymous = register(hub, RtspTarget(camsim.url("secure")), camera_id="anon")
        with pytest.raises(SourceUnavailable, match="asks for a user name and password"):
            await anonymous.subscribe("test")
        assert "not-the-Password-42" not in str(hub.stats())
    assert "not-the-Password-42" not in caplog.text


async def test_camera_restart_resumes_the_same_subscription(camsim: CamsimHandle) -> None:
    handoff = LoopHandoff()  # shared by every source, as the application wires it
    async with StreamHub() as hub:
        states = record_states(hub)
        stream = register(hub, camsim.target("open"), handoff=handoff)
        other = register(hub, camsim.target("gop4"), camera_id="other", handoff=handoff)
        await other.start()
        async with await stream.subscribe("test") as sub:
            await _frames(sub, 5)
            await camsim.stop()
            await wait_until(lambda: stream.state is StreamState.RECONNECTING, 5, "RECONNECTING")
            while sub.get_nowait() is not None:  # what was queued before the camera went away
                pass
            await asyncio.sleep(0.5)  # a few refused reconnects
            assert "connection refused by 127.0.0.1:" in stream.reason
            await camsim.start()
            after = await _frames(sub, 3, timeout=10)
        assert after[0].keyframe
        assert after[0].discontinuity
        assert decode_keyframe(after[0]) == (640, 360)
        seen = [state for state, _ in states]
        reconnecting = seen.index(StreamState.RECONNECTING)
        assert StreamState.LIVE in seen[reconnecting:]
        source = stream.stats()["source"]
        assert isinstance(source, dict)
        assert source["connects"] == 2
        assert source["reconnects"] >= 1
        assert other.stats()["frames"] > 0  # the other camera went through the same handoff


async def test_hung_camera_trips_the_stall_watchdog(camsim: CamsimHandle) -> None:
    settings = IngestConfig(
        open_timeout=1.0, stall_timeout=1.0, backoff_initial=0.2, backoff_max=0.5
    )
    async with StreamHub() as hub:
        states = record_states(hub)
        stream = register(hub, camsim.target("open"), settings)
        async with await stream.subscribe("test") as sub:
            await _frames(sub, 3)
            camsim.freeze()
            try:
                await wait_until(
                    lambda: (StreamState.RECONNECTING, "no video for 1 s: reconnecting") in states,
                    6, "the stall watchdog",
                )
            finally:
                camsim.thaw()
            while sub.get_nowait() is not None:
                pass
            after = await _frames(sub, 2, timeout=15)
        assert after[0].discontinuity
        assert after[0].keyframe


async def test_unreachable_port_says_connection_refused() -> None:
    with __import__("socket").socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with StreamHub() as hub:
        stream = register(hub, RtspTarget(f"rtsp://127.0.0.1:{port}/cam"), start_timeout=1.5)
        with pytest.raises(SourceUnavailable, match="connection refused"):
            await stream.subscribe("test")
        assert stream.state is StreamState.RECONNECTING
        assert stream.reason == f"connection refused by 127.0.0.1:{port}"


async def _serve(reply: bytes | None) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read(1000)
            if reply is None:
                await asyncio.sleep(30)  # says nothing
            else:
                writer.write(reply)
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize(
    "reply", [b"SSH-2.0-OpenSSH_9.2p1\r\n", b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"]
)
async def test_a_port_that_is_not_rtsp_is_named(reply: bytes) -> None:
    server, port = await _serve(reply)
    async with server, StreamHub() as hub:
        stream = register(hub, RtspTarget(f"rtsp://127.0.0.1:{port}/x"), start_timeout=1.5)
        with pytest.raises(SourceUnavailable):
            await stream.subscribe("test")
        assert stream.reason == f"not an RTSP server at 127.0.0.1:{port}"


async def test_a_server_that_never_answers_times_out() -> None:
    server, port = await _serve(None)
    settings = IngestConfig(open_timeout=1.0, stall_timeout=1.0, backoff_initial=0.2,
                            backoff_max=0.5)
    async with server, StreamHub() as hub:
        stream = register(hub, RtspTarget(f"rtsp://127.0.0.1:{port}/x"), settings,
                          start_timeout=2.5)
        with pytest.raises(SourceUnavailable):
            await stream.subscribe("test")
        assert stream.reason == "camera did not answer within 1 s"


async def test_missing_path_is_an_error(camsim: CamsimHandle) -> None:
    async with StreamHub() as hub:
        stream = register(hub, RtspTarget(camsim.url("open").replace("/open", "/nope")))
        with pytest.raises(SourceUnavailable, match="RTSP 404"):
            await stream.subscribe("test")
        assert stream.state is StreamState.ERROR
        assert stream.reason == "the camera has no stream at path /nope (RTSP 404): check the URL"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1/stream", r"only rtsp:// and rtsps:// .* \(got http://\)"),
        ("file:///etc/passwd", r"\(got file://\)"),
        ("exec:ffmpeg -i x", "spaces or control characters"),
        ("/dev/video0", "a URL without a scheme"),
        ("rtsp://admin:hunter2@10.0.0.5/s", "contains credentials"),
        ("rtsp:///nohost", "no host name"),
    ],
)
def test_non_rtsp_urls_are_refused_at_construction(url: str, message: str) -> None:
    with pytest.raises(UnsafeUrl, match=message) as info:
        RtspSource("cam/main", RtspTarget(url), FAST)
    assert "hunter2" not in str(info.value)


async def test_parameter_sets_from_the_sdp_are_put_before_every_idr(
    camsim_factory: CamsimFactory,
) -> None:
    cameras = [CamsimCameraConfig(name="Quiet", path="quiet", width=320, height=240, fps=15,
                                  bitrate_kbps=300, gop_seconds=0.5)]
    sim = await camsim_factory(
        cameras, options={"quiet": CameraOptions(parameter_sets_in_band=False)}
    )
    async with StreamHub() as hub:
        stream = register(hub, sim.target("quiet"))
        async with await stream.subscribe("test") as sub:
            frames = await _frames(sub, 20)
        source = stream.stats()["source"]
    keyframes = [f for f in frames if f.keyframe]
    assert len(keyframes) >= 2
    for frame in keyframes:
        assert bitstream.nal_types(frame.data)[1:3] == [bitstream.NalType.SPS, bitstream.NalType.PPS]
        assert decode_keyframe(frame) == (320, 240)
    assert isinstance(source, dict)
    assert source["parameter_sets_inserted"] == source["keyframes"] >= 2


async def test_b_frames_audio_and_h265_are_reported(camsim_factory: CamsimFactory) -> None:
    small = {"width": 320, "height": 240, "fps": 15, "bitrate_kbps": 300}
    cameras = [
        CamsimCameraConfig(name="B-frames", path="bframes", **small),
        CamsimCameraConfig(name="HEVC", path="hevc", **small),
    ]
    sim = await camsim_factory(cameras, options={
        "bframes": CameraOptions(bframes=2, audio="pcma"),
        "hevc": CameraOptions(codec="h265", audio="opus"),
    })
    async with StreamHub() as hub:
        with_b = register(hub, sim.target("bframes"), camera_id="bframes")
        hevc = register(hub, sim.target("hevc"), camera_id="hevc")
        async with await with_b.subscribe("t") as sub_b, await hevc.subscribe("t") as sub_h:
            await _frames(sub_b, 5)
            hevc_frames = await _frames(sub_h, 5)
    b_info: MediaInfo = with_b.media_info
    assert b_info.has_b_frames
    assert b_info.audio_codec == "pcm_alaw"
    assert any("B-frames" in warning for warning in b_info.warnings)
    h_info: MediaInfo = hevc.media_info
    assert h_info.video_codec == "h265"
    assert h_info.audio_codec == "opus"
    assert any("H.265" in warning for warning in h_info.warnings)
    assert hevc_frames[0].codec == "h265"
    assert hevc_frames[0].keyframe
    assert decode_keyframe(hevc_frames[0]) == (320, 240)


async def test_udp_transport(camsim: CamsimHandle) -> None:
    async with StreamHub() as hub:
        stream = register(hub, camsim.target("open", transport="udp"))
        async with await stream.subscribe("test") as sub:
            frames = await _frames(sub, 5)
    assert decode_keyframe(frames[0]) == (640, 360)


class _Sink:
    def __init__(self) -> None:
        self.frames: list[EncodedFrame] = []
        self.states: list[tuple[StreamState, str]] = []
        self.infos: list[MediaInfo] = []

    def push_frame(self, frame: EncodedFrame) -> None:
        self.frames.append(frame)

    def set_state(self, state: StreamState, reason: str = "") -> None:
        self.states.append((state, reason))

    def set_media_info(self, info: MediaInfo) -> None:
        self.infos.append(info)


async def test_aclose_is_idempotent_and_stops_the_thread(camsim: CamsimHandle) -> None:
    source = RtspSource("cam/main", camsim.target("open"), FAST)
    sink = _Sink()
    await source.start(sink)
    await wait_until(lambda: len(sink.frames) >= 3, 10, "frames")
    await asyncio.gather(source.aclose(), source.aclose())
    await source.aclose()
    stats = source.stats()
    assert stats["state"] == "closed"
    assert stats["thread_alive"] is False
    assert not [t for t in threading.enumerate() if t.name == "rtsp:cam/main"]
    count = len(sink.frames)
    await asyncio.sleep(0.3)
    assert len(sink.frames) == count  # nothing delivered after close
    with pytest.raises(RuntimeError, match="only be started once"):
        await source.start(sink)


def _sessions_to(port: int) -> int:
    """Established TCP connections to ``port`` on this machine, counted from the client side
    (RTSP over TCP: one per session)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


async def test_a_restart_never_opens_a_second_session_while_the_first_lives(
    camsim: CamsimHandle,
) -> None:
    """The camera hangs, its last viewer leaves and a new one arrives at once: the new source
    connects only once the old demux thread has ended and closed its session (a camera with a
    session limit would refuse a second one). The FFmpeg reader's thread can be stuck in a
    read; the native client's ``aclose`` closes its connection before it returns."""
    settings = IngestConfig(
        open_timeout=2.0, stall_timeout=3.0, backoff_initial=0.2, backoff_max=0.5,
        rtsp_client="ffmpeg",
    )
    old_thread_alive_at_start: list[bool] = []

    def make() -> RtspSource:
        old_thread_alive_at_start.append(
            any(t.name == "rtsp:cam/main" and t.is_alive() for t in threading.enumerate())
        )
        # join_timeout below the stall timeout: aclose outlasts it and keeps waiting.
        return RtspSource("cam/main", camsim.target("open"), settings, join_timeout=1.0)

    sessions: list[int] = []
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            sessions.append(_sessions_to(camsim.port))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, name="test:session-sampler", daemon=True)
    loop = asyncio.get_running_loop()
    async with StreamHub() as hub:
        stream = hub.register("cam", "main", make, StreamSettings(close_after=0.0,
                                                                  start_timeout=20.0))
        sampler.start()
        try:
            async with await stream.subscribe("first") as sub:
                await _frames(sub, 3)
                camsim.freeze()  # the first session now hangs in a read
                thaw = loop.call_later(settings.stall_timeout + 0.5, camsim.thaw)
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.05)  # the linger timer (0 s) fires: the source is stopping
            async with await stream.subscribe("second") as sub:
                after = await _frames(sub, 3, timeout=15)
        finally:
            thaw.cancel()
            camsim.thaw()
            sampling.set()
            await asyncio.to_thread(sampler.join)
    assert old_thread_alive_at_start == [False, False]
    assert stream.starts == 2
    assert after[0].discontinuity
    assert 1 in sessions
    assert max(sessions) == 1
