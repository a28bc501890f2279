"""The native RTSP client: its parsers under random input, and against GStreamer's RTSP server."""

from __future__ import annotations

import asyncio
import itertools
import os

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from camsim.runner import CameraOptions
from ingest.rtsp import RtspSource, RtspTarget
from ingest.rtsp_native.clock import ArrivalClock
from ingest.rtsp_native.depacketize import Codec, Depacketizer
from ingest.rtsp_native.errors import RtspProtocolError
from ingest.rtsp_native.interleave import InterleavedParser
from ingest.rtsp_native.sdp import control_url, parse_sdp
from rtcc.config import CamsimCameraConfig, IngestConfig
from rtcc.errors import SourceUnavailable
from rtcc.hub import StreamHub
from rtcc.media import EncodedFrame, StreamState
from tests.fixtures.camsim import SECURE_PASSWORD, SECURE_USER, CamsimFactory, CamsimHandle
from tests.ingest.helpers import FAST, register, wait_until

START = b"\x00\x00\x00\x01"
MTU = 60


# -- a reference packetizer (RFC 6184 / RFC 7798), to produce what a camera sends ------------


def _nal(codec: Codec, kind: int, body: bytes, first: bool) -> bytes:
    # The top bit of the first body byte is first_mb_in_slice == 0 (H.264) or
    # first_slice_segment_in_pic_flag (H.265): set on the first slice of a picture only.
    body = bytes([body[0] | 0x80 if first else body[0] & 0x7F]) + body[1:]
    if codec == "h264":
        return bytes([0x60 | kind]) + body
    return bytes([kind << 1, 1]) + body


def _packets(codec: Codec, units: list[list[bytes]], seq0: int, ts0: int
             ) -> list[tuple[int, bytes]]:
    """(unit index, RTP packet) in sending order."""
    out: list[tuple[int, bytes]] = []
    seq = seq0
    header_size = 1 if codec == "h264" else 2
    for index, nals in enumerate(units):
        payloads: list[bytes] = []
        for nal in nals:
            if len(nal) <= MTU:
                payloads.append(nal)
                continue
            head, body = nal[:header_size], nal[header_size:]
            chunks = [body[i:i + MTU] for i in range(0, len(body), MTU)]
            for n, chunk in enumerate(chunks):
                flags = (0x80 if n == 0 else 0) | (0x40 if n == len(chunks) - 1 else 0)
                if codec == "h264":
                    fu = bytes([(head[0] & 0xE0) | 28, flags | (head[0] & 0x1F)])
                else:
                    kind = (head[0] >> 1) & 0x3F
                    fu = bytes([49 << 1, 1, flags | kind])
                payloads.append(fu + chunk)
        for n, payload in enumerate(payloads):
            marker = 0x80 if n == len(payloads) - 1 else 0
            header = bytes([0x80, marker | 96]) + (seq & 0xFFFF).to_bytes(2, "big")
            header += ((ts0 + 3000 * index) & 0xFFFFFFFF).to_bytes(4, "big") + b"\0\0\0\1"
            out.append((index, header + payload))
            seq += 1
    return out


def _units(codec: Codec) -> st.SearchStrategy[list[list[bytes]]]:
    key = 5 if codec == "h264" else 19
    delta = 1
    nal_body = st.binary(min_size=2, max_size=150)

    def unit(keyframe: bool) -> st.SearchStrategy[list[bytes]]:
        kind = key if keyframe else delta
        return st.lists(nal_body, min_size=1, max_size=3).map(
            lambda bodies: [_nal(codec, kind, body, n == 0) for n, body in enumerate(bodies)])

    return st.tuples(unit(True), st.lists(st.booleans().flatmap(unit), max_size=8)).map(
        lambda pair: [pair[0], *pair[1]])


def _is_key(codec: Codec, nals: list[bytes]) -> bool:
    return (nals[0][0] & 0x1F) == 5 if codec == "h264" else ((nals[0][0] >> 1) & 0x3F) == 19


@settings(max_examples=120, deadline=None)
@given(codec=st.sampled_from(["h264", "h265"]), units=st.data(),
       seq0=st.integers(0, 0xFFFF), ts0=st.integers(0, 0xFFFFFFFF),
       drops=st.sets(st.integers(0, 200), max_size=4))
def test_depacketizer_never_emits_a_damaged_unit(
    codec: Codec, units: st.DataObject, seq0: int, ts0: int, drops: set[int]
) -> None:
    sent = units.draw(_units(codec))
    packets = _packets(codec, sent, seq0, ts0)
    emitted: list[tuple[bytes, int, bool]] = []
    depacketizer = Depacketizer(codec, lambda data, ts, key: emitted.append((data, ts, key)))
    lost_units: set[int] = set()
    for position, (index, packet) in enumerate(packets):
        if position in drops:
            lost_units.add(index)
            continue
        depacketizer.push(memoryview(packet))
    by_ts = {(ts0 + 3000 * i) & 0xFFFFFFFF: i for i in range(len(sent))}
    previous = -1
    for data, ts, key in emitted:
        index = by_ts[ts]
        assert index not in lost_units
        assert data == b"".join(START + nal for nal in sent[index])
        assert key == _is_key(codec, sent[index])
        if any(previous < lost < index for lost in lost_units):
            assert key, "a unit after a loss was emitted before the next keyframe"
        previous = index
    if not lost_units:
        assert len(emitted) == len(sent)


@settings(max_examples=150, deadline=None)
@given(codec=st.sampled_from(["h264", "h265"]),
       packets=st.lists(st.binary(max_size=80), max_size=20))
def test_depacketizer_survives_garbage(codec: Codec, packets: list[bytes]) -> None:
    depacketizer = Depacketizer(codec, lambda _data, _ts, _key: None)
    for packet in packets:
        depacketizer.push(memoryview(packet))


@settings(max_examples=150, deadline=None)
@given(chunks=st.lists(st.binary(max_size=300), max_size=8),
       frames=st.lists(st.tuples(st.integers(0, 3), st.binary(max_size=300)), max_size=6),
       split=st.integers(1, 64))
def test_interleaved_parser_frames_and_errors(
    chunks: list[bytes], frames: list[tuple[int, bytes]], split: int
) -> None:
    got: list[tuple[int, bytes]] = []
    parser = InterleavedParser(lambda channel, data: got.append((channel, bytes(data))),
                               lambda _message: None)
    wire = b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 3\r\n\r\nabc"
    wire += b"".join(b"$" + bytes([ch]) + len(d).to_bytes(2, "big") + d for ch, d in frames)
    for i in range(0, len(wire), split):  # well-formed input, in arbitrary pieces
        parser.feed(wire[i:i + split])
    assert got == frames
    junk = InterleavedParser(lambda _channel, _data: None, lambda _message: None)
    try:
        for chunk in chunks:
            junk.feed(chunk)
    except RtspProtocolError:
        pass


def test_sdp_control_urls() -> None:
    sdp = parse_sdp(
        "v=0\r\na=control:*\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
        "a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z0IAH5WoFAFuQA==,aM48gA==\r\n"
        "a=control:stream=0\r\nm=audio 0 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
    )
    video = sdp.video
    assert video is not None
    assert (video.encoding, video.clock_rate, video.control) == ("H264", 90000, "stream=0")
    assert sdp.audio_codec == "pcm_alaw"
    assert control_url("rtsp://h/cam", "stream=0") == "rtsp://h/cam/stream=0"
    assert control_url("rtsp://h/cam/", "trackID=1") == "rtsp://h/cam/trackID=1"
    assert control_url("rtsp://h/cam", "rtsp://h/other/t1") == "rtsp://h/other/t1"
    assert control_url("rtsp://h/cam", "*") == "rtsp://h/cam"


# -- against GStreamer's RTSP server ---------------------------------------------------------


def _decode_all(frames: list[EncodedFrame]) -> int:
    """Pictures decoded from the frames with one decoder and no extradata."""
    first = frames[0]
    decoder = av.CodecContext.create("hevc" if first.codec == "h265" else first.codec, "r")
    assert isinstance(decoder, av.VideoCodecContext)
    pictures = 0
    for frame in frames:
        pictures += len(list(decoder.decode(av.Packet(frame.data))))
    return pictures + len(list(decoder.decode(None)))


@pytest.mark.parametrize("codec", ["h264", "h265"])
async def test_frames_decode_and_teardown_is_answered(
    camsim_factory: CamsimFactory, codec: str
) -> None:
    sim = await camsim_factory(
        [CamsimCameraConfig(name="Cam", path="cam", width=320, height=240, fps=15,
                            bitrate_kbps=300, gop_seconds=1.0)],
        options={"cam": CameraOptions(codec="h265" if codec == "h265" else "h264")},
    )
    frames: list[EncodedFrame] = []

    class Sink:
        def push_frame(self, frame: EncodedFrame) -> None:
            frames.append(frame)

        def set_state(self, state: object, reason: str = "") -> None:
            pass

        def set_media_info(self, info: object) -> None:
            pass

    source = RtspSource("cam/main", sim.target("cam"), FAST)
    await source.start(Sink())
    await wait_until(lambda: sum(f.keyframe for f in frames) >= 2, 10, "two keyframes")
    await source.aclose()
    stats = source.stats()
    assert stats["client"] == "native"
    assert stats["teardown_status"] == 200  # the server answered our TEARDOWN
    assert frames[0].keyframe
    assert frames[0].discontinuity
    assert frames[0].codec == codec
    assert _decode_all(frames) == len(frames)
    assert stats["keyframes"] == sum(f.keyframe for f in frames)


async def test_keepalive_outlives_a_short_session_timeout(camsim_factory: CamsimFactory) -> None:
    """The server announces a 2 s session timeout; the client refreshes the session about
    every second and the server answers each refresh within the session. (gst-rtsp-server
    also keeps a TCP session alive while it sends to it, so an expiry itself is not seen.)"""
    sim = await camsim_factory(
        [CamsimCameraConfig(name="Cam", path="cam", width=160, height=120, fps=10,
                            bitrate_kbps=100, gop_seconds=1.0)],
        options={"cam": CameraOptions(session_timeout=2)},
    )
    async with StreamHub() as hub:
        stream = register(hub, sim.target("cam"))
        async with await stream.subscribe("test"):
            await asyncio.sleep(5.0)  # two and a half session timeouts
            source = stream.stats()["source"]
            assert isinstance(source, dict)
            assert source["connects"] == 1
            assert source["reconnects"] == 0
            assert source["keepalives"] >= 3
            assert source["keepalives_answered"] >= 3
            before = source["frames"]
            assert isinstance(before, int)
            await wait_until(lambda: stream.stats()["source"]["frames"] > before,  # type: ignore[index]
                             5, "frames after the session timeout")


async def test_udp_and_ffmpeg_setting_use_the_ffmpeg_reader(camsim: CamsimHandle) -> None:
    udp = RtspSource("cam/udp", camsim.target("open", transport="udp"), FAST)
    assert udp.stats()["client"] == "ffmpeg"
    assert udp.stats()["native_unsupported"] == "the camera is configured for RTP over UDP"
    configured = RtspSource("cam/f", camsim.target("open"),
                            IngestConfig(rtsp_client="ffmpeg"))
    assert configured.stats()["client"] == "ffmpeg"
    assert "native_unsupported" not in configured.stats()


async def test_a_killed_camera_is_reported_and_reconnected(camsim: CamsimHandle) -> None:
    async with StreamHub() as hub:
        stream = register(hub, camsim.target("open"))
        async with await stream.subscribe("test"):
            await wait_until(lambda: stream.stats()["frames"] > 3, 10, "frames")  # type: ignore[operator]
            assert camsim.pid is not None
            os.kill(camsim.pid, 9)
            await wait_until(lambda: "reconnecting" in stream.reason
                             or "connection refused" in stream.reason, 5, "the failure")
            await camsim.start()
            await wait_until(
                lambda: stream.stats()["source"]["connects"] == 2,  # type: ignore[index]
                15, "a second session")
        source = stream.stats()["source"]
        assert isinstance(source, dict)
        assert source["reconnects"] >= 1


async def test_basic_auth_accepted_and_a_wrong_password_refused(
    camsim_factory: CamsimFactory,
) -> None:
    user, password = SECURE_USER, SECURE_PASSWORD
    sim = await camsim_factory(
        [CamsimCameraConfig(name="Basic", path="basic", width=160, height=120, fps=10,
                            bitrate_kbps=100, gop_seconds=1.0, username=user,
                            password=SecretStr(password))],
        options={"basic": CameraOptions(auth="basic")},
    )
    async with StreamHub() as hub:
        stream = register(hub, sim.target("basic"))
        async with await stream.subscribe("test") as sub:
            frame = await asyncio.wait_for(sub.get(), 10)
        assert frame.keyframe
        wrong = register(hub, RtspTarget(sim.url("basic"), user, password + "-wrong"),
                         camera_id="wrong")
        with pytest.raises(SourceUnavailable, match=r"wrong user name or password \(RTSP 401\)"):
            await wrong.subscribe("test")
        assert wrong.state is StreamState.ERROR


def test_capture_times_follow_the_rtp_clock_not_the_batched_reads() -> None:
    clock = ArrivalClock()
    frame = 3000  # 30 fps at 90 kHz
    base = 1_800_000_000.0
    stamped = []
    for n in range(300):
        arrival = base + n / 30 + 0.002  # on the wire 2 ms after capture
        read = base + 0.04 * (int((arrival - base) / 0.04) + 1)  # seen at the next 40 ms read
        stamped.append(clock.capture_time((0xFFFF0000 + n * frame) & 0xFFFFFFFF, read))
    steps = [later - earlier for earlier, later in itertools.pairwise(stamped)]
    # Evenly spaced as the camera captured them (the 32-bit wrap included), never bunched.
    assert max(abs(step - 1 / 30) for step in steps[10:]) < 1e-6
    assert all(later > earlier for earlier, later in itertools.pairwise(stamped))
    # Placed by the least-delayed arrival: within a few milliseconds of the real capture.
    assert all(abs(stamped[n] - (base + n / 30)) < 0.01 for n in range(30, 300))


def test_capture_times_start_again_when_the_camera_clock_jumps_back() -> None:
    clock = ArrivalClock()
    for n in range(60):
        clock.capture_time(900_000 + n * 3000, 100.0 + n / 30)
    after = clock.capture_time(3000, 102.0)  # the camera restarted its timestamps
    assert abs(after - 102.0) < 1e-9  # its arrival, not 10 s in the past


def test_capture_times_move_forward_in_decode_order_with_b_frames() -> None:
    clock = ArrivalClock()
    order = [0, 3, 1, 2, 6, 4, 5, 9, 7, 8]  # I P B B P B B ...: timestamps out of order
    stamped = [clock.capture_time(n * 3000, 50.0 + i / 30) for i, n in enumerate(order)]
    assert all(later > earlier for earlier, later in itertools.pairwise(stamped))
    assert stamped[-1] <= 50.0 + 9 / 30  # never after its arrival
