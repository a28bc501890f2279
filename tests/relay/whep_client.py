"""An aiortc WHEP viewer for tests: posts an offer, decodes what arrives, counts it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack


class WhepError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"{status}: {text}")
        self.status = status
        self.text = text


@dataclass
class Decoded:
    count: int = 0
    first_at: float | None = None
    first_luma: float | None = None
    lumas: list[float] = field(default_factory=list)
    pts: list[int] = field(default_factory=list)


async def make_offer(pc: RTCPeerConnection) -> str:
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    return str(pc.localDescription.sdp)


class WhepViewer:
    def __init__(self, base_url: str, camera: str, *, profile: str | None = None,
                 keep_lumas: bool = False, headers: dict[str, str] | None = None,
                 query: dict[str, str] | None = None) -> None:
        self.base_url = base_url
        self.camera = camera
        self.profile = profile
        self.keep_lumas = keep_lumas
        self.headers = headers or {}
        self.query = dict(query or {})
        if profile:
            self.query["profile"] = profile
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.location: str | None = None
        self.answer = ""
        self.response_headers: dict[str, str] = {}
        self.decoded = Decoded()
        self.posted_at = 0.0
        self.paused = False
        self._track: MediaStreamTrack | None = None
        self._reader: asyncio.Task[None] | None = None
        self._first = asyncio.Event()
        self.rewrite_offer: Callable[[str], str] | None = None
        self._offer: str | None = None

    async def offer(self) -> str:
        """The SDP offer this viewer posts (created once)."""
        if self._offer is None:
            self._offer = await make_offer(self.pc)
        return self._offer

    async def connect(self, session: aiohttp.ClientSession) -> None:
        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._track = track

        offer = await self.offer()
        if self.rewrite_offer is not None:
            offer = self.rewrite_offer(offer)
        url = f"{self.base_url}/whep/{self.camera}"
        self.posted_at = time.monotonic()
        async with session.post(url, data=offer, timeout=aiohttp.ClientTimeout(total=30),
                                params=self.query,
                                headers={"Content-Type": "application/sdp", **self.headers}) as r:
            text = await r.text()
            if r.status != 201:
                raise WhepError(r.status, text)
            self.location = r.headers["Location"]
            self.response_headers = dict(r.headers)
        self.answer = text
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=text, type="answer"))
        assert self._track is not None
        self._reader = asyncio.get_running_loop().create_task(self._read(self._track),
                                                              name="test:whep-viewer:read")

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.VideoFrame)
                if self.decoded.count == 0 or self.keep_lumas:
                    planes = frame.to_ndarray(format="yuv420p")
                    luma = float(np.mean(planes[: frame.height]))
                    if self.decoded.count == 0:
                        self.decoded.first_at = time.monotonic()
                        self.decoded.first_luma = luma
                    if self.keep_lumas:
                        self.decoded.lumas.append(luma)
                        self.decoded.pts.append(int(frame.pts or 0))
                self.decoded.count += 1
                self._first.set()

    async def wait_first_frame(self, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            await self._first.wait()

    async def wait_frames(self, count: int, timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            while self.decoded.count < count:
                await asyncio.sleep(0.05)

    async def delete(self, session: aiohttp.ClientSession) -> int:
        assert self.location is not None
        async with session.delete(f"{self.base_url}{self.location}", headers=self.headers,
                                  timeout=aiohttp.ClientTimeout(total=10)) as r:
            return r.status

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self.pc.close()
