"""The server's end of one WHIP publish: an aiortc peer connection that receives H.264 and hands
over encoded frames without decoding them.

aiortc's receiver reassembles frames in its jitter buffer (with NACK retransmission requests and
RTX unwrapping) and then queues each one for a decoder thread. This module replaces that queue
with one that delivers the encoded frame (Annex-B, RTP timestamp on the 90 kHz clock) to a
callback on the event loop, so the decoder thread never decodes anything: passthrough, as the
relay sends it. The answer is refused unless H.264 was negotiated.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpreceiver import RTCRtpReceiver

from rtcc.errors import CodecNotSupported, RtccError

log = logging.getLogger(__name__)

FrameHandler = Callable[[bytes, int], None]
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"


class InvalidWhipOffer(RtccError):
    """The publisher's SDP offer cannot be used (malformed, no video, not sending)."""


class _PassthroughQueue:
    """Stands in for the receiver's decoder queue. ``put`` runs on the event loop (from the
    receiver's RTP handler): frames go to the callback, only the stop marker reaches the
    decoder thread, which then exits."""

    def __init__(self, on_frame: Callable[[Any], None]) -> None:
        self._on_frame = on_frame
        self._inner: queue.Queue[Any] = queue.Queue()

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:  # noqa: ARG002 -- queue.Queue.put's signature
        if item is None:
            self._inner.put(None)
            return
        _codec, frame = item
        try:
            self._on_frame(frame)
        except Exception:  # a bug here must not break aiortc's RTP handling
            log.exception("WHIP: delivering a received frame failed")

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        return self._inner.get(block, timeout)


def install_passthrough(receiver: RTCRtpReceiver, on_frame: Callable[[Any], None]) -> None:
    """Make ``receiver`` hand its reassembled encoded frames to ``on_frame``. Must run before
    the receiver starts (before the connection is established)."""
    if not hasattr(receiver, _DECODER_QUEUE):
        raise CodecNotSupported(
            "this aiortc version keeps its receive queue elsewhere: WHIP passthrough needs "
            "aiortc 1.16 (or a version with the same receiver)"
        )
    # Private (name-mangled) attribute: aiortc has no public hook for encoded frames;
    # tests/relay/test_aiortc_internals.py fails if an upgrade moves it.
    setattr(receiver, _DECODER_QUEUE, _PassthroughQueue(on_frame))


def _check_offer(offer: str) -> None:
    if not offer.lstrip().startswith("v=0"):
        raise InvalidWhipOffer("the body is not an SDP offer (it must start with v=0)")
    if "m=video" not in offer:
        raise InvalidWhipOffer("the offer has no video section")
    if "a=recvonly" in offer or "a=inactive" in offer:
        raise InvalidWhipOffer("the offer's video section does not send")


class WhipSession:
    """One publisher's peer connection. ``closed`` is set however it ends."""

    def __init__(self, session_id: str, camera_id: str, profile: str, agent_id: str, *,
                 negotiate_timeout: float = 10.0, connect_timeout: float = 15.0) -> None:
        self.id = session_id
        self.camera_id = camera_id
        self.profile = profile
        self.agent_id = agent_id
        self.created = time.time()
        self.closed = asyncio.Event()
        self.reason = ""
        self.frames = 0
        self.bytes = 0
        self._negotiate_timeout = negotiate_timeout
        self._connect_timeout = connect_timeout
        self._handler: FrameHandler | None = None
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._pc.on("connectionstatechange", self._state_changed)
        self._watchdog: asyncio.Task[None] | None = None
        self._close_task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return f"whip:{self.camera_id}/{self.profile}:{self.id[:8]}"

    def set_frame_handler(self, handler: FrameHandler | None) -> None:
        self._handler = handler

    async def negotiate(self, offer: str) -> str:
        """Apply the offer and return the answer (every candidate included: no trickle)."""
        _check_offer(offer)
        try:
            async with asyncio.timeout(self._negotiate_timeout):
                return await self._negotiate(offer)
        except TimeoutError:
            raise InvalidWhipOffer("the server could not prepare its answer in time") from None

    async def _negotiate(self, offer: str) -> str:
        pc = self._pc
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        except (ValueError, KeyError, AssertionError, IndexError) as exc:
            raise InvalidWhipOffer(f"the offer is not usable SDP ({type(exc).__name__})") from None
        videos = [t for t in pc.getTransceivers() if t.kind == "video"]
        if not videos:
            raise InvalidWhipOffer("the offer has no video section")
        for transceiver in pc.getTransceivers():
            transceiver.direction = "recvonly" if transceiver is videos[0] else "inactive"
        video = videos[0]
        codecs = getattr(video, "_codecs", [])
        if not codecs or codecs[0].mimeType.lower() != "video/h264":
            offered = ", ".join(sorted({c.mimeType for c in codecs})) or "none in common"
            raise CodecNotSupported(f"WHIP publishers must send H.264 (offered: {offered})")
        install_passthrough(video.receiver, self._frame)
        await pc.setLocalDescription(await pc.createAnswer())
        self._watchdog = asyncio.get_running_loop().create_task(
            self._connect_watchdog(), name=f"{self.name}:connect"
        )
        return str(pc.localDescription.sdp)

    def _frame(self, frame: Any) -> None:
        data: bytes = frame.data
        self.frames += 1
        self.bytes += len(data)
        handler = self._handler
        if handler is not None and not self.closed.is_set():
            handler(data, int(frame.timestamp))

    async def _connect_watchdog(self) -> None:
        await asyncio.sleep(self._connect_timeout)
        if self._pc.connectionState != "connected" and not self.closed.is_set():
            self._begin_close("the publisher's connection was not established in time")

    def _state_changed(self) -> None:
        state = self._pc.connectionState
        if state in ("failed", "closed"):
            self._begin_close(f"the publisher's connection {state}")

    def _begin_close(self, reason: str) -> None:
        if self._close_task is None:
            self._close_task = asyncio.get_running_loop().create_task(
                self.aclose(reason), name=f"{self.name}:close"
            )

    async def aclose(self, reason: str = "session ended") -> None:
        """Close the peer connection. Idempotent; the first reason is kept."""
        if not self.closed.is_set():
            self.reason = reason
            self.closed.set()
            log.info("%s: ended (%s) after %d frames", self.name, reason, self.frames)
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None and watchdog is not asyncio.current_task():
            watchdog.cancel()
            await asyncio.wait({watchdog})
        await self._pc.close()

    def stats(self) -> dict[str, object]:
        return {"session": self.id, "camera_id": self.camera_id, "profile": self.profile,
                "agent_id": self.agent_id, "state": self._pc.connectionState,
                "frames": self.frames, "bytes": self.bytes,
                "age": round(time.time() - self.created, 3), "reason": self.reason}
