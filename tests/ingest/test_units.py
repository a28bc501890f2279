"""Backoff, URL handling, failure wording and the normaliser, without a network."""

from __future__ import annotations

import random
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import pytest

from ingest.backoff import Backoff
from ingest.mediainfo import VideoTrack
from ingest.normalizer import Normalizer
from ingest.rtsp import RtspTarget
from ingest.rtsp_failures import describe_failure
from rtcc import bitstream
from rtcc.camera_url import parse_rtsp_url, redact_url, scrub, url_with_credentials
from tests.ingest.helpers import decode_keyframe


def test_backoff_is_flat_then_doubles_to_the_cap_with_jitter() -> None:
    backoff = Backoff(1.0, 30.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(14)]
    assert all(0.8 <= d <= 1.0 for d in delays[:5])  # a restarting camera is back quickly
    assert 1.6 <= delays[5] <= 2.0
    assert 3.2 <= delays[6] <= 4.0
    assert all(24.0 <= d <= 30.0 for d in delays[10:])
    assert len(set(delays)) == len(delays)  # jittered
    assert 24.0 <= backoff.next_delay(fatal=True) <= 30.0
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_a_refused_password_waits_longer_than_an_unreachable_camera() -> None:
    backoff = Backoff(1.0, 5.0, fatal=60.0, rng=random.Random(3))
    assert all(d <= 5.0 for d in (backoff.next_delay() for _ in range(20)))
    assert 48.0 <= backoff.next_delay(fatal=True) <= 60.0


def test_target_repr_hides_the_password() -> None:
    target = RtspTarget("rtsp://10.1.2.3/stream1", "admin", "hunter2")
    assert "hunter2" not in repr(target)
    assert "hunter2" not in str(target)


def test_credentials_are_percent_encoded_into_the_authority() -> None:
    url = url_with_credentials("rtsp://[fe80::1]:8554/a/b?x=1", "ad min", "p@ss:w/rd")
    assert url == "rtsp://ad%20min:p%40ss%3Aw%2Frd@[fe80::1]:8554/a/b?x=1"
    assert url_with_credentials("rtsp://h/s", "", "") == "rtsp://h/s"


def test_redaction_removes_userinfo_and_secret_query_values() -> None:
    assert redact_url("rtsp://u:p@cam.local:554/live?channel=1&password=x&token=y") == (
        "rtsp://cam.local:554/live?channel=1&password=***&token=***"
    )
    assert scrub("failed: 'rtsp://admin:hunter2@10.0.0.1/s'", "hunter2") == (
        "failed: 'rtsp://***@10.0.0.1/s'"
    )
    assert "p%40ss" not in scrub("x p%40ss y", "p@ss")


def test_address_defaults() -> None:
    assert parse_rtsp_url("rtsp://cam.example").endpoint == "cam.example:554"
    assert parse_rtsp_url("RTSPS://[2001:db8::5]/x").endpoint == "[2001:db8::5]:322"
    assert parse_rtsp_url("rtsp://h:8554").path == "/"


def test_failure_wording_for_statuses() -> None:
    address = parse_rtsp_url("rtsp://10.0.0.9:554/live")

    def reason(exc: Exception, phase: str = "open", elapsed: float = 0.0) -> str:
        return describe_failure(exc, phase, elapsed, address, has_credentials=True,  # type: ignore[arg-type]
                                open_timeout=5, stall_timeout=10).reason

    assert reason(av.error.HTTPServerError(5, "x")) == (
        "the camera at 10.0.0.9:554 reported an error (RTSP 5xx), it may be busy: reconnecting"
    )
    assert reason(av.error.ExitError(5, "x"), "read") == "no video for 10 s: reconnecting"
    assert reason(av.error.ExitError(5, "x")) == "camera did not answer within 5 s"
    assert reason(ConnectionResetError(104, "reset"), "read") == (
        "the camera at 10.0.0.9:554 dropped the connection: reconnecting"
    )


def test_normalizer_turns_mp4_packets_into_decodable_frames(tmp_path: Path) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("needs the ffmpeg binary")
    clip = tmp_path / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
         "testsrc2=size=320x240:rate=30", "-frames:v", "45", "-c:v", "libx264", "-bf", "0",
         "-g", "30", str(clip)],
        check=True, timeout=60,
    )
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        extradata = bytes(stream.codec_context.extradata or b"")
        track = VideoTrack(0, "h264", stream.time_base or Fraction(1, 90000),
                           bitstream.parse_extradata(extradata), True)
        normalizer = Normalizer.for_track(track, 30.0)
        frames = []
        for packet in container.demux(stream):
            if packet.size:
                frames += normalizer.push(bytes(packet), packet.pts, packet.dts,
                                      packet.is_keyframe, 0.0)
        frames += normalizer.flush(0.0)
    assert len(frames) == 45
    assert [i for i, f in enumerate(frames) if f.keyframe] == [0, 30]
    assert frames[0].discontinuity
    assert frames[1].pts - frames[0].pts == 3000
    assert decode_keyframe(frames[30]) == (320, 240)
    assert normalizer.parameter_sets_inserted == 2


async def test_handoff_keeps_order_and_coalesces_under_load() -> None:
    import asyncio
    import threading

    from ingest.handoff import HandoffClosed, LoopHandoff

    handoff = LoopHandoff(min_interval=0.01)
    handoff.bind(asyncio.get_running_loop())
    received: list[tuple[int, int]] = []

    def producer(index: int) -> None:
        for seq in range(300):
            handoff.post(received.append, (index, seq))

    threads = [threading.Thread(target=producer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        await asyncio.to_thread(thread.join)
    await wait_until_drained(handoff)
    assert len(received) == 1200
    for index in range(4):
        assert [seq for i, seq in received if i == index] == list(range(300))
    assert handoff.wakeups < 1200  # many items per wakeup

    idle = LoopHandoff()
    with pytest.raises(HandoffClosed):
        idle.post(received.append, (9, 9))  # never bound to a loop


async def wait_until_drained(handoff: object) -> None:
    import asyncio

    for _ in range(200):
        if handoff.stats()["queued"] == 0:  # type: ignore[attr-defined]
            await asyncio.sleep(0.05)
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the handoff never drained")
