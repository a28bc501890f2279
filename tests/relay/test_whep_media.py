"""What viewers receive: decodable H.264 at once, from the GOP cache, to many viewers at a time."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from relay.settings import RelaySettings
from tests.relay.clip import INDEX_BASE, Clip
from tests.relay.conftest import RelayServer, start_server
from tests.relay.whep_client import WhepViewer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def index_server(index_clip: Clip) -> AsyncIterator[RelayServer]:
    srv, runner = await start_server({"cam1": {"main": index_clip}},
                                     RelaySettings(viewer_timeout=3.0))
    try:
        yield srv
    finally:
        await runner.cleanup()


async def warm(srv: RelayServer, in_gop: range) -> None:
    """Start the camera and wait until it is ``in_gop`` frames past a keyframe."""
    stream = srv.hub.get("cam1", "main")
    holder = await stream.subscribe("warm-up", wait=True)
    source = srv.sources["cam1/main"][-1]
    gop = source.clip.gop
    async with asyncio.timeout(15):
        while not (source.keyframes_pushed and source.pushed % gop in in_gop):
            await asyncio.sleep(0.01)
    holder.close("warm-up done")


async def test_aiortc_viewer_decodes_the_camera(
    server: RelayServer, http: aiohttp.ClientSession
) -> None:
    viewer = WhepViewer(server.url, "cam1")
    try:
        await viewer.connect(http)
        await viewer.wait_frames(30)
        async with http.get(f"{server.url}/api/relay/sessions") as r:
            stats = await r.json()
        (session,) = stats["sessions"]
        assert session["camera_id"] == "cam1"
        assert session["state"] == "connected"
        assert session["rtp"]["packets"] > 30
        assert stats["streams"][0]["viewers"] == 1
    finally:
        await viewer.close()


async def test_viewer_of_a_4s_gop_camera_decodes_before_the_next_keyframe(
    index_server: RelayServer, http: aiohttp.ClientSession
) -> None:
    await warm(index_server, range(15, 25))  # 1-1.6 s into a 4 s GOP
    source = index_server.sources["cam1/main"][-1]
    keyframe_at_join = source.keyframes_pushed[-1]
    keyframes_at_join = len(source.keyframes_pushed)
    viewer = WhepViewer(index_server.url, "cam1", keep_lumas=True)
    try:
        await viewer.connect(http)
        await viewer.wait_first_frame()
        keyframes_when_decoded = len(source.keyframes_pushed)
        first_index = round(viewer.decoded.first_luma or 0) - INDEX_BASE
        assert viewer.decoded.first_at is not None
        ttff = viewer.decoded.first_at - viewer.posted_at
        print(f"time to first decoded frame with a 4 s GOP: {ttff * 1000:.0f} ms, "
              f"joined {source.pushed - keyframe_at_join} frames into the GOP")
        # The first picture is the cached keyframe, decoded before the camera sent another.
        assert keyframes_when_decoded == keyframes_at_join
        assert abs(first_index - keyframe_at_join % len(source.clip.units)) <= 2
        await viewer.wait_frames(40)
        session = index_server.registry.sessions()[0]
        assert session.frames_caught_up >= 15
    finally:
        await viewer.close()


async def test_twenty_viewers_all_decode_and_share_packetization(
    server: RelayServer, http: aiohttp.ClientSession
) -> None:
    viewers = [WhepViewer(server.url, "cam1") for _ in range(20)]
    try:
        for start in range(0, 20, 5):
            await asyncio.gather(*(v.connect(http) for v in viewers[start:start + 5]))
        await asyncio.gather(*(v.wait_frames(15, timeout=30) for v in viewers))
        assert server.hub.get("cam1", "main").subscriber_count == 20
        stats: Any = server.registry.stats()
        (stream,) = stats["streams"]
        assert stream["viewers"] == 20
        packetization = stream["packetization"]
        assert packetization["shared"] >= 10 * packetization["packetized"]
    finally:
        await asyncio.gather(*(v.close() for v in viewers))


async def test_a_frozen_viewer_does_not_reduce_the_others_and_is_ended(
    index_server: RelayServer, http: aiohttp.ClientSession
) -> None:
    frozen = subprocess.Popen(
        [sys.executable, "-m", "tests.relay.viewer_process", index_server.url, "cam1"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    viewers = [WhepViewer(index_server.url, "cam1") for _ in range(3)]
    try:
        assert frozen.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(frozen.stdout.readline), 30)
        assert line.strip() == "connected"
        for viewer in viewers:
            await viewer.connect(http)
        await asyncio.gather(*(v.wait_frames(10) for v in viewers))
        frozen_session = index_server.registry.sessions()[0]
        os.kill(frozen.pid, signal.SIGSTOP)
        source = index_server.sources["cam1/main"][-1]
        pushed0, counts0 = source.pushed, [v.decoded.count for v in viewers]
        await asyncio.sleep(4)
        pushed1, counts1 = source.pushed, [v.decoded.count for v in viewers]
        sent = pushed1 - pushed0
        received = [b - a for a, b in zip(counts0, counts1, strict=True)]
        print(f"frames pushed {sent}, decoded by the others {received}")
        assert all(r >= sent - 3 for r in received)
        async with asyncio.timeout(10):
            while not frozen_session.closing:
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.2)
        assert "stopped answering" in frozen_session.close_reason
        assert frozen_session.grant in [g for g, _ in index_server.access.closed]
        assert len(index_server.registry) == 3
    finally:
        os.kill(frozen.pid, signal.SIGKILL)
        frozen.wait()
        await asyncio.gather(*(v.close() for v in viewers))


async def test_keyframe_requests_are_answered_from_the_gop_cache(
    index_server: RelayServer, http: aiohttp.ClientSession
) -> None:
    await warm(index_server, range(5, 15))
    source = index_server.sources["cam1/main"][-1]
    keyframes = len(source.keyframes_pushed)
    keyframe_index = source.keyframes_pushed[-1] % len(source.clip.units)
    viewer = WhepViewer(index_server.url, "cam1", keep_lumas=True)
    try:
        await viewer.connect(http)
        await viewer.wait_frames(20)  # >1 s: the rate limit allows the next request
        session = index_server.registry.sessions()[0]
        assert session.sender is not None
        receiver = viewer.pc.getTransceivers()[0].receiver
        before = len(viewer.decoded.lumas)
        for _ in range(3):
            await receiver._send_rtcp_pli(session.sender.ssrc)  # noqa: SLF001 -- aiortc has no public way to send a PLI
        async with asyncio.timeout(5):
            while session.resyncs < 1 or len(viewer.decoded.lumas) < before + 10:
                await asyncio.sleep(0.05)
        assert session.keyframe_requests_answered == 1
        assert session.keyframe_requests_ignored == 2
        assert session.sender.plis == 3
        replayed = [round(luma) - INDEX_BASE for luma in viewer.decoded.lumas[before:]]
        # The viewer was sent the cached keyframe again: its picture jumps back to it.
        assert any(abs(i - keyframe_index) <= 1 for i in replayed), replayed
        assert len(source.keyframes_pushed) == keyframes  # the camera was not asked
    finally:
        await viewer.close()


async def test_nacks_are_answered_with_retransmissions(
    server: RelayServer, http: aiohttp.ClientSession
) -> None:
    viewer = WhepViewer(server.url, "cam1")
    try:
        await viewer.connect(http)
        await viewer.wait_frames(10)
        session = server.registry.sessions()[0]
        sender = session.sender
        assert sender is not None
        receiver = viewer.pc.getTransceivers()[0].receiver
        recent = [(sender.next_seq - n) & 0xFFFF for n in (3, 2, 1)]
        await receiver._send_rtcp_nack(sender.ssrc, recent)  # noqa: SLF001 -- aiortc has no public way to send a NACK
        await receiver._send_rtcp_nack(sender.ssrc, [(sender.next_seq + 30000) & 0xFFFF])  # noqa: SLF001 -- aiortc has no public way to send a NACK
        async with asyncio.timeout(5):
            while sender.retransmit_misses < 1:
                await asyncio.sleep(0.05)
        assert sender.packets_retransmitted >= 3
        assert sender.nacks >= 2
        # A flood of NACKs is not answered with a flood of packets.
        flood = sorted((sender.next_seq - n) & 0xFFFF for n in range(1, 1001))
        await receiver._send_rtcp_nack(sender.ssrc, flood)  # noqa: SLF001 -- aiortc has no public way to send a NACK
        async with asyncio.timeout(5):
            while sender.retransmits_refused == 0:
                await asyncio.sleep(0.05)
        answered = sender.packets_retransmitted + sender.retransmit_misses
        assert answered <= 4 + max(100, sender.packets_sent)
        assert sender.retransmits_refused + answered >= 1000
    finally:
        await viewer.close()
