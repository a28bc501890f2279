"""WHEP viewers that count RTP packets without decoding (the benchmark's load generator).

``python -m benchmarks.relay_viewers --url http://127.0.0.1:PORT --viewers N`` connects N aiortc
peer connections to ``/whep/cam1``, prints ``{"event": "connected", ...}``, then answers every
``mark`` line on stdin with the packet and byte counts of each viewer, and leaves (DELETE) when
stdin closes. Receiver statistics are still kept, so the viewers send normal RTCP reports.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpreceiver import RTCRtpReceiver, StreamStatistics
from aiortc.rtp import RtpPacket


class CountingViewer:
    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.packets = 0
        self.bytes = 0
        self.location = ""

    def _hook(self, receiver: RTCRtpReceiver) -> None:
        streams: dict[int, Any] = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]

        async def count(packet: RtpPacket, arrival_time_ms: int) -> None:
            self.packets += 1
            self.bytes += len(packet.payload)
            stats = streams.get(packet.ssrc)
            if stats is None:
                stats = streams[packet.ssrc] = StreamStatistics(90000)
            stats.add(packet)

        receiver._handle_rtp_packet = count  # type: ignore[method-assign]

    async def connect(self, http: aiohttp.ClientSession, url: str) -> None:
        transceiver = self.pc.addTransceiver("video", direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with http.post(f"{url}/whep/cam1", data=self.pc.localDescription.sdp,
                             headers={"Content-Type": "application/sdp"},
                             timeout=aiohttp.ClientTimeout(total=30)) as response:
            answer = await response.text()
            if response.status != 201:
                raise RuntimeError(f"WHEP POST failed: {response.status} {answer}")
            self.location = response.headers["Location"]
        self._hook(transceiver.receiver)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def leave(self, http: aiohttp.ClientSession, url: str) -> None:
        try:
            async with http.delete(f"{url}{self.location}",
                                   timeout=aiohttp.ClientTimeout(total=10)):
                pass
        finally:
            await self.pc.close()


def emit(event: dict[str, object]) -> None:
    print(json.dumps(event), flush=True)


async def run(url: str, count: int) -> None:
    viewers = [CountingViewer() for _ in range(count)]
    async with aiohttp.ClientSession() as http:
        for start in range(0, count, 5):
            await asyncio.gather(*(v.connect(http, url) for v in viewers[start:start + 5]))
        emit({"event": "connected", "viewers": count})
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            emit({"event": "mark", "time": time.monotonic(),
                  "packets": [v.packets for v in viewers],
                  "bytes": [v.bytes for v in viewers]})
        await asyncio.gather(*(v.leave(http, url) for v in viewers), return_exceptions=True)


__benchmark__ = False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--viewers", type=int, required=True)
    args = parser.parse_args(argv)
    asyncio.run(run(args.url, args.viewers))


if __name__ == "__main__":
    main()
