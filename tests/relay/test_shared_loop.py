"""Live viewers of one stream fed by one loop; sender reports; the frame-based NACK history."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from relay.history import NackHistory
from relay.settings import RelaySettings
from tests.relay.clip import Clip
from tests.relay.conftest import RelayServer, start_server
from tests.relay.whep_client import WhepViewer


def shared_loop(server: RelayServer) -> dict[str, Any]:
    stats: Any = server.registry.stats()
    (stream,) = stats["streams"]
    loop: dict[str, Any] = stream["shared_loop"]
    return loop


async def test_live_viewers_share_one_loop_and_a_resync_leaves_and_rejoins_it(
    server: RelayServer, http: aiohttp.ClientSession
) -> None:
    viewers = [WhepViewer(server.url, "cam1") for _ in range(4)]
    try:
        await asyncio.gather(*(v.connect(http) for v in viewers))
        await asyncio.gather(*(v.wait_frames(10) for v in viewers))
        async with asyncio.timeout(10):
            while shared_loop(server)["members"] < 4:
                await asyncio.sleep(0.05)
        before = shared_loop(server)
        await asyncio.sleep(1.0)
        after = shared_loop(server)
        frames = after["frames"] - before["frames"]
        wakeups = after["wakeups"] - before["wakeups"]
        # one wake-up per camera frame (15 fps) serves all four viewers
        assert frames >= 4 * 10
        assert wakeups * 4 <= frames + 4

        session = next(s for s in server.registry.sessions() if s.sender is not None)
        assert session.sender is not None
        receiver = next(v for v in viewers
                        if v.location and v.location.endswith(session.session_id))
        others = [v for v in viewers if v is not receiver]
        counts = [v.decoded.count for v in others]
        await receiver.pc.getTransceivers()[0].receiver._send_rtcp_pli(session.sender.ssrc)  # noqa: SLF001 -- aiortc has no public way to send a PLI
        async with asyncio.timeout(10):
            while session.resyncs < 1:
                await asyncio.sleep(0.05)
            while shared_loop(server)["members"] < 4:  # caught up again, back in the loop
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        assert all(v.decoded.count > c for v, c in zip(others, counts, strict=True))
        await receiver.wait_frames(receiver.decoded.count + 5)
    finally:
        await asyncio.gather(*(v.close() for v in viewers))


async def test_sender_reports_let_the_relay_measure_round_trip_time(
    server: RelayServer, http: aiohttp.ClientSession
) -> None:
    viewer = WhepViewer(server.url, "cam1")
    try:
        await viewer.connect(http)
        await viewer.wait_first_frame()
        (session,) = server.registry.sessions()
        assert session.sender is not None
        # aiortc answers a sender report with LSR/DLSR in its next receiver report
        async with asyncio.timeout(10):
            while session.sender.rtt is None:
                await asyncio.sleep(0.1)
        assert 0 <= session.sender.rtt < 0.5
        assert session.sender.stats()["rtt_ms"] is not None
    finally:
        await viewer.close()


def test_frame_history_answers_each_packet_of_the_frames_it_holds() -> None:
    history = NackHistory(256)
    seq = 65530
    frames = []
    for index in range(100):
        payloads = tuple(b"f%d-p%d" % (index, n) for n in range(7))
        history.record_frame(seq, index * 3000, payloads)
        frames.append((seq, index * 3000, payloads))
        seq = (seq + len(payloads)) & 0xFFFF
    for start, ts, payloads in frames[-36:]:  # the last 252 packets are all held
        for n, payload in enumerate(payloads):
            marker = 0x80 if n == len(payloads) - 1 else 0
            assert history.get((start + n) & 0xFFFF) == (ts, payload, marker)
    oldest = frames[0][0]
    assert history.get(oldest) is None
    history.clear()
    assert history.get(frames[-1][0]) is None


@pytest.mark.parametrize("tick", [0.005, 0.0], ids=["one-ticker", "task-per-stream"])
async def test_live_loops_of_several_cameras_run_on_one_ticker_or_a_task_each(
    small_clip: Clip, http: aiohttp.ClientSession, tick: float
) -> None:
    srv, runner = await start_server({"cam1": {"main": small_clip}, "cam2": {"main": small_clip}},
                                     RelaySettings(live_tick=tick))
    viewers = [WhepViewer(srv.url, camera) for camera in ("cam1", "cam1", "cam2", "cam2")]
    try:
        await asyncio.gather(*(v.connect(http) for v in viewers))
        await asyncio.gather(*(v.wait_frames(10) for v in viewers))
        def streams() -> list[dict[str, Any]]:
            stats: Any = srv.registry.stats()
            found: list[dict[str, Any]] = stats["streams"]
            return found

        async with asyncio.timeout(10):
            while [s["shared_loop"].get("members") for s in streams()] != [2, 2]:
                await asyncio.sleep(0.05)
        before = [dict(stream["shared_loop"]) for stream in streams()]
        await asyncio.gather(*(v.wait_frames(v.decoded.count + 15) for v in viewers))
        names = {task.get_name() for task in asyncio.all_tasks()}
        per_stream = {name for name in names if name.endswith(":fanout")}
        if tick:
            assert "relay:live-ticker" in names
            assert not per_stream
        else:
            assert "relay:live-ticker" not in names
            assert len(per_stream) == 2
        for first, stream in zip(before, streams(), strict=True):
            loop = stream["shared_loop"]
            frames = loop["frames"] - first["frames"]
            assert frames >= 2 * 10
            # each round serves both viewers (a viewer may leave and rejoin on a keyframe request)
            assert (loop["wakeups"] - first["wakeups"]) * 2 <= frames + 4
    finally:
        await asyncio.gather(*(v.close() for v in viewers))
        await runner.cleanup()
