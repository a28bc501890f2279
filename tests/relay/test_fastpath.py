"""The compiled loops (``relay.fastpath``) and their Python fallbacks: the same bytes, and an aiortc
viewer decodes the camera through either."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pylibsrtp import Policy, Session

from relay import fastpath, packets
from relay.rtp_header import RTP_HEADER
from relay.sender import new_scratch_buffer
from relay.settings import RelaySettings
from relay.srtp import InPlaceProtector
from relay.udp import DatagramWriter, plan_batches
from rtcc import bitstream
from rtcc.media import EncodedFrame
from tests.relay.clip import Clip
from tests.relay.conftest import RelayServer, start_server
from tests.relay.whep_client import WhepViewer

ROOT = Path(__file__).resolve().parents[2]
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
        assert sender.stats()["send_loop"] == ("compiled" if compiled else "python")
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


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:  # noqa: ARG002 -- asyncio's protocol
        self.datagrams.put_nowait(data)


@needs_build
@pytest.mark.parametrize("gso", [True, False], ids=["segmented", "one-per-call"])
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_compiled_send_delivers_packets_that_unprotect_to_the_frame(
    host: str, gso: bool
) -> None:
    send_frame = fastpath.SEND_FRAME
    assert send_frame is not None
    profile = Policy.SRTP_PROFILE_AES128_CM_SHA1_80
    key = bytes(range(30))  # 16 bytes of key, 14 of salt
    outbound = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile))
    inbound = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=profile))
    loop = asyncio.get_running_loop()
    try:
        receiving, receiver = await loop.create_datagram_endpoint(_Receiver, local_addr=(host, 0))
    except OSError:
        pytest.skip(f"no {host} on this machine")
    sending, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                     local_addr=(host, 0))
    writer = DatagramWriter(sending, gso=gso)
    try:
        rng = random.Random(3)
        payloads = (*(rng.randbytes(1100) for _ in range(60)), rng.randbytes(300))
        batches = plan_batches([len(p) for p in payloads])
        assert len(batches) > 1
        scratch = new_scratch_buffer()
        raw = InPlaceProtector(outbound, scratch).raw()
        assert raw is not None
        address = receiving.get_extra_info("sockname")
        packed = writer.packed_address(address)
        assert packed is not None
        header = RTP_HEADER.pack(0x80, 96, 0, 123456, 0x1234)
        lost, calls, refused = send_frame(writer.fileno(), packed, scratch.data, payloads,
                                          batches, len(payloads) - 1, header, 65530,
                                          raw.protect_address, raw.context_address, gso)
        assert (lost, refused) == (0, 0)
        assert calls == (len(batches) if gso else len(payloads))
        for index, payload in enumerate(payloads):
            async with asyncio.timeout(10):
                packet = inbound.unprotect(await receiver.datagrams.get())
            _, marker_pt, seq, timestamp, ssrc = RTP_HEADER.unpack(packet[:12])
            assert (seq, timestamp, ssrc) == ((65530 + index) & 0xFFFF, 123456, 0x1234)
            assert marker_pt == (0x80 if index == len(payloads) - 1 else 0) | 96
            assert packet[12:] == payload
    finally:
        writer.close()
        sending.close()
        receiving.close()


def test_without_the_compiled_module_everything_falls_back_to_python() -> None:
    """An installation without a C compiler has no ``relay._fastpath``: the relay imports and
    packetizes all the same."""
    script = (
        "import sys\n"
        "class Missing:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'relay._fastpath':\n"
        "            raise ImportError('not built')\n"
        "sys.meta_path.insert(0, Missing())\n"
        "from relay import fastpath, packets, engine\n"
        "from rtcc import bitstream\n"
        "from rtcc.media import EncodedFrame\n"
        "assert fastpath.SEND_FRAME is None and fastpath.BATCH_PROTECT is None\n"
        "assert packets._fragment is packets._fragment_python\n"
        "assert packets._split_annexb is bitstream.split_annexb\n"
        "nal = bytes([0x65]) + bytes(range(256)) * 20\n"
        "frame = EncodedFrame('h264', b'\\x00\\x00\\x00\\x01' + nal, 0, True, 0.0)\n"
        "print(len(packets.packetize_frame(frame).payloads))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == 5  # 5120 bytes of NAL unit in FU-A fragments of at most 1200
