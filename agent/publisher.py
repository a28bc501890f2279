"""Publishing one camera profile to the server with WHIP, H.264 passed through untouched.

The camera is pulled over RTSP by the same ``RtspSource`` the server uses (Annex-B access units,
SPS/PPS before every keyframe, reconnects on its own); its frames go into a bounded
``PassthroughTrack`` that aiortc packetizes without decoding (``av.Packet`` input). The offer
carries H.264 only. Timestamps stay monotonic across camera reconnects. The publish ends on
``stop()`` (WHIP DELETE) or when the peer connection fails; ``ended`` is set either way.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from fractions import Fraction

import aiohttp
import av
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from ingest.rtsp import RtspSource, RtspTarget
from rtcc.config import IngestConfig
from rtcc.errors import RtccError
from rtcc.media import EncodedFrame, MediaInfo, StreamState

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 90_000)
HTTP_TIMEOUT = 10.0
FRAME_TICKS = 3000
"""Gap put between the last frame before a camera reconnect and the first after it."""


class PublishError(RtccError):
    """The server refused or failed the WHIP publish; the message carries its reason."""


class PassthroughTrack(MediaStreamTrack):
    """A video track of already-encoded H.264 access units (``av.Packet`` for aiortc).

    Bounded: when the sender falls behind by ``maxsize`` frames, everything up to the next
    keyframe is dropped so the picture recovers cleanly instead of lagging further.
    """

    kind = "video"

    def __init__(self, maxsize: int = 90) -> None:
        super().__init__()
        self._queue: deque[EncodedFrame] = deque()
        self._maxsize = maxsize
        self._ready = asyncio.Event()
        self._waiting_keyframe = False
        self._offset = 0
        self._last_pts: int | None = None
        self.frames_in = 0
        self.frames_out = 0
        self.dropped = 0

    def push(self, frame: EncodedFrame) -> None:
        self.frames_in += 1
        if self._waiting_keyframe and not frame.keyframe:
            self.dropped += 1
            return
        if len(self._queue) >= self._maxsize:
            self.dropped += len(self._queue)
            self._queue.clear()
            if not frame.keyframe:
                self._waiting_keyframe = True
                self.dropped += 1
                return
        self._waiting_keyframe = False
        self._queue.append(frame)
        self._ready.set()

    async def recv(self) -> av.Packet:  # type: ignore[type-arg]
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        frame = self._queue.popleft()
        if frame.discontinuity and self._last_pts is not None:
            self._offset = self._last_pts + FRAME_TICKS - frame.pts
        pts = frame.pts + self._offset
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        packet = av.Packet(frame.data)
        packet.pts = pts
        packet.time_base = TIME_BASE
        self.frames_out += 1
        return packet

    def stop(self) -> None:
        super().stop()
        self._ready.set()


class _Sink:
    """The RTSP source's FrameSink: frames into the track, state into the log."""

    def __init__(self, name: str, track: PassthroughTrack) -> None:
        self._name = name
        self._track = track
        self.state = StreamState.STARTING
        self.reason = ""

    def push_frame(self, frame: EncodedFrame) -> None:
        self._track.push(frame)
        self.state = StreamState.LIVE

    def set_state(self, state: StreamState, reason: str = "") -> None:
        self.state, self.reason = state, reason

    def set_media_info(self, info: MediaInfo) -> None:
        for warning in info.warnings:
            log.warning("camera %s: %s", self._name, warning)


def _h264_only(sender_capabilities: object) -> list[RTCRtpCodecCapability]:
    codecs = list(getattr(sender_capabilities, "codecs", []))
    h264 = [c for c in codecs if c.mimeType.lower() == "video/h264"
            and str(c.parameters.get("packetization-mode", "0")) == "1"]
    rtx = [c for c in codecs if c.mimeType.lower() == "video/rtx"]
    return [*h264[:1], *rtx]


class Publisher:
    def __init__(self, *, name: str, whip_url: str, headers: dict[str, str], target: RtspTarget,
                 ingest: IngestConfig, ice_servers: list[str] | None = None) -> None:
        self.name = name
        self._whip_url = whip_url
        self._headers = headers
        self._target = target
        self._ingest = ingest
        self._ice = [RTCIceServer(urls=url) for url in ice_servers or []]
        self.track = PassthroughTrack()
        self._sink = _Sink(name, self.track)
        self._source: RtspSource | None = None
        self._pc: RTCPeerConnection | None = None
        self._location: str | None = None
        self.ended = asyncio.Event()
        self.reason = ""

    async def start(self) -> None:
        """Start pulling the camera and publish; raises PublishError (or an HTTP error)."""
        try:
            self._source = RtspSource(self.name, self._target, self._ingest)
            await self._source.start(self._sink)
            pc = RTCPeerConnection(RTCConfiguration(iceServers=self._ice))
            self._pc = pc
            pc.on("connectionstatechange", self._state_changed)
            transceiver = pc.addTransceiver(self.track, direction="sendonly")
            transceiver.setCodecPreferences(_h264_only(RTCRtpSender.getCapabilities("video")))
            await pc.setLocalDescription(await pc.createOffer())
            answer = await self._post(str(pc.localDescription.sdp))
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        except BaseException:
            await self.stop("the publish could not start", delete=False)
            raise
        log.info("camera %s: publishing to %s", self.name, self._whip_url.split("?", 1)[0])

    async def _post(self, offer: str) -> str:
        headers = {**self._headers, "Content-Type": "application/sdp"}
        timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http, http.post(
                self._whip_url, data=offer.encode(), headers=headers
            ) as response:
                text = (await response.text())[:65536]
                if response.status != 201:
                    raise PublishError(f"the server refused the publish (HTTP "
                                       f"{response.status}): {text[:300]}")
                location = response.headers.get("Location", "")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PublishError(f"the WHIP request failed ({type(exc).__name__})") from None
        if location:
            base = self._whip_url.split("/whip/", 1)[0]
            self._location = location if "://" in location else base + location
        return text

    def _state_changed(self) -> None:
        pc = self._pc
        if pc is not None and pc.connectionState in ("failed", "closed"):
            self.reason = self.reason or f"the connection to the server {pc.connectionState}"
            self.ended.set()

    async def stop(self, reason: str = "stopped", *, delete: bool = True) -> None:
        """End the publish (DELETE when it was accepted), the peer connection and the pull."""
        self.reason = self.reason or reason
        location, self._location = self._location, None
        if delete and location:
            try:
                timeout = aiohttp.ClientTimeout(total=3.0)
                async with aiohttp.ClientSession(timeout=timeout) as http, http.delete(
                    location, headers=self._headers
                ):
                    pass
            except (aiohttp.ClientError, TimeoutError):
                pass  # the server is gone or already ended it: nothing more to tell
        pc, self._pc = self._pc, None
        if pc is not None:
            await pc.close()
        self.track.stop()
        source, self._source = self._source, None
        if source is not None:
            await source.aclose()
        self.ended.set()

    def stats(self) -> dict[str, object]:
        return {"frames_in": self.track.frames_in, "frames_out": self.track.frames_out,
                "dropped": self.track.dropped, "camera_state": str(self._sink.state),
                "camera_reason": self._sink.reason}
