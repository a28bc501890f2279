"""The compiled loops (``relay.fastpath``) and their Python fallbacks: the same bytes, and an aiortc
viewer decodes the camera through either."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import aiohttp
import pytest

from relay import fastpath, packets
from relay.settings import RelaySettings
from rtcc import bitstream
from rtcc.media import EncodedFrame
from tests.relay.clip import Clip
from tests.relay.conftest import RelayServer, start_server
from tests.relay.whep_client import WhepViewer

BUILT = fastpath.BATCH_PROTECT is not None
needs_build = pytest.mark.skipif(not BUILT, reason="relay._fastpath is not built here "
                                 "(no C compiler or Python headers at install time)")


def _annexb_like(rng: random.Random, count: int) -> list[bytes]:
    """Short byte strings dense in zeros and ones: start codes, 4-byte start codes, trailing
    zeros, empty units, bytes before the first start code."""
    return [bytes(rng.choice(b"\x00\x00\x00\x01\x02\x03") for _ in range(rng.randrange(40)))
            for _ in range(count)]


@needs_build
def test_compiled_split_gives_the_units_the_python_one_gives(small_clip: Clip) -> None:
    split = fastpath.SPLIT_ANNEXB
    assert split is not None
    cases = [unit for unit, _ in small_clip.units] + _annexb_like(random.Random(7), 3000)
    for data in cases:
        assert split(data) == bitstream.split_annexb(data)


@needs_build
def test_compiled_fragments_are_the_python_ones(small_clip: Clip) -> None:
    fragment = fastpath.FRAGMENT
    assert fragment is not None
    rng = random.Random(11)
    nals = [nal for unit, _ in small_clip.units[:10] for nal in bitstream.split_annexb(unit)]
    nals += [rng.randbytes(rng.randrange(3, 6000)) for _ in range(100)]
    for nal in nals:
        for max_payload in (100, 1199, 1200):
            for prefix, header in ((b"\x7c", 1), (b"\x62\x01", 2)):
                if len(nal) <= header:
                    continue
                assert fragment(nal, max_payload, prefix, 5, header) == (
                    packets._fragment_python(nal, max_payload, prefix, 5, header))  # noqa: SLF001 -- the fallback itself


def test_packetized_frames_are_the_same_with_the_python_fallback(
    small_clip: Clip, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames = [EncodedFrame("h264", unit, index * 6000, key, 0.0)
              for index, (unit, key) in enumerate(small_clip.units[:40])]
    chosen = [packets.packetize_frame(frame).payloads for frame in frames]
    monkeypatch.setattr(packets, "_fragment", packets._fragment_python)  # noqa: SLF001 -- the fallback itself
    monkeypatch.setattr(packets, "_split_annexb", bitstream.split_annexb)
    fallback = [packets.packetize_frame(frame).payloads for frame in frames]
    assert fallback == chosen
    assert any(len(payloads) > 3 for payloads in fallback)  # fragmented frames were compared


@pytest.fixture(params=[True, False], ids=["compiled", "python"])
async def send_server(request: pytest.FixtureRequest, small_clip: Clip
                      ) -> AsyncIterator[tuple[RelayServer, bool]]:
    compiled: bool = request.param
    if compiled and not BUILT:
        pytest.skip("relay._fastpath is not built here")
    srv, runner = await start_server({"cam1": {"main": small_clip}},
                                     RelaySettings(compiled_send=compiled))
    try:
        yield srv, compiled
    finally:
        await runner.cleanup()


async def test_viewer_decodes_through_either_send_loop_and_nacks_are_answered(
    send_server: tuple[RelayServer, bool], http: aiohttp.ClientSession
) -> None:
    server, compiled = send_server
    viewer = WhepViewer(server.url, "cam1")
    try:
        await viewer.connect(http)
        await viewer.wait_frames(40)  # past the cached GOP: live frames through the loop
        (session,) = server.registry.sessions()
        sender = session.sender
        assert sender is not None
        assert sender.compiled is compiled
        assert sender.stats()["compiled"] is compiled
        assert sender.packets_dropped == 0
        # the history of packets sent by this loop answers a NACK
        receiver = viewer.pc.getTransceivers()[0].receiver
        before = sender.packets_retransmitted
        await receiver._send_rtcp_nack(sender.ssrc, [(sender.next_seq - 2) & 0xFFFF])  # noqa: SLF001 -- aiortc has no public way to send a NACK
        async with asyncio.timeout(10):
            while sender.packets_retransmitted == before:
                await asyncio.sleep(0.05)
        assert sender.packets_retransmitted == before + 1
        await viewer.wait_frames(viewer.decoded.count + 10)
    finally:
        await viewer.close()
