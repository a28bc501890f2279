"""RTP timestamps of one viewer: paced while catching up, camera timing once live."""

from __future__ import annotations

import itertools

from relay.timing import RtpClock
from rtcc.media import EncodedFrame


def frame(pts: int, discontinuity: bool = False) -> EncodedFrame:
    return EncodedFrame("h264", b"", pts, False, 0.0, discontinuity)


def test_catch_up_frames_follow_the_send_schedule_then_live_follows_the_camera() -> None:
    clock = RtpClock(origin=1000, catchup_bps=8_000_000, min_step=0.002)
    cached = [clock.catchup(frame(3000 * i), size=10_000) for i in range(60)]
    steps = {b - a for a, b in itertools.pairwise(cached)}
    assert steps == {900}  # 10 kB at 8 Mbit/s = 10 ms = 900 ticks, not the camera's 3000
    assert abs(clock.take_paced_seconds() - 60 * 0.01) < 1e-6
    live = [clock.live(frame(3000 * i)) for i in range(60, 70)]
    assert live[0] == cached[-1] + 3000
    assert {b - a for a, b in itertools.pairwise(live)} == {3000}


def test_small_frames_take_at_least_the_minimum_step() -> None:
    clock = RtpClock(origin=0, catchup_bps=40e6, min_step=0.002)
    first, second = clock.catchup(frame(0), 100), clock.catchup(frame(3000), 100)
    assert second - first == 180


def test_discontinuity_and_jumps_never_go_backwards() -> None:
    clock = RtpClock(origin=5000, catchup_bps=40e6, min_step=0.002)
    a = clock.live(frame(900_000))
    b = clock.live(frame(903_000))
    c = clock.live(frame(10, discontinuity=True))  # camera reconnected, its clock restarted
    d = clock.live(frame(3010))
    e = clock.live(frame(50_000_000))  # a jump without a flag
    assert a < b < c < d < e
    assert d - c == 3000
    assert e - d == 3000
    assert clock.reanchors == 2


def test_timestamps_wrap_at_32_bits() -> None:
    clock = RtpClock(origin=2**32 - 3000, catchup_bps=40e6, min_step=0.002)
    first = clock.live(frame(0))
    second = clock.live(frame(3000))
    third = clock.live(frame(6000))
    assert (first, second, third) == (0, 3000, 6000)
