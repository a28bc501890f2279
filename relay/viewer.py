"""One WHEP viewer: its peer connection, its subscription, the pump that feeds it, its end.

The pump starts as soon as DTLS is up. Everything already queued in the subscription (the cached
GOP the hub put there, plus what arrived during negotiation) is sent at once with paced
timestamps, so the viewer decodes the last keyframe immediately; then frames are sent as they
arrive with the camera's timing. A keyframe request (PLI/FIR) or a queue overflow is answered by
re-subscribing, which hands the viewer the current GOP again, at most once per
``keyframe_request_interval``.

A session ends exactly once, whatever ends it (DELETE, ICE/DTLS failure, the stream or the
owner's consent ending, a viewer that stops answering, shutdown): its tasks are cancelled, its
subscription and peer connection closed, and ``close_view`` records the end of the view.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport

from relay.engine import RtpSendEngine
from relay.fanout import LeaveFanout, LiveFanout
from relay.negotiation import OfferedVideo, answer_offer
from relay.packets import PacketizedFrame, StreamPackets
from relay.sender import PassthroughSender
from relay.settings import RelaySettings
from relay.srtp import ScratchBuffer
from relay.timing import RtpClock
from relay.turn import server_ice_servers
from rtcc.access import MediaAccess, ViewGrant
from rtcc.errors import CodecNotSupported, StreamClosed
from rtcc.hub import Stream, Subscription
from rtcc.media import EncodedFrame

log = logging.getLogger(__name__)

_CLOSE_STEP_TIMEOUT = 5.0


def ice_configuration(settings: RelaySettings) -> RTCConfiguration:
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(urls=server.urls, username=server.username,
                         credential=server.credential)
            for server in server_ice_servers(settings)
        ]
    )


@dataclass(frozen=True, slots=True)
class SharedConnection:
    """A peer connection already negotiated (and usually connected) that carries one view after
    another (``relay.wall_link``): the view sends through its engine with its clock, so RTP
    sequence numbers and timestamps continue from one camera to the next, and leaves the
    connection open when it ends."""

    pc: RTCPeerConnection
    engine: RtpSendEngine
    clock: RtpClock


class ViewerSession:
    def __init__(
        self,
        *,
        session_id: str,
        stream: Stream,
        subscription: Subscription,
        grant: ViewGrant,
        access: MediaAccess,
        cache: StreamPackets,
        settings: RelaySettings,
        on_closed: Callable[[ViewerSession], None],
        scratch: ScratchBuffer | None = None,
        fanout: LiveFanout | None = None,
        connection: SharedConnection | None = None,
    ) -> None:
        self.session_id = session_id
        self.stream = stream
        self.camera_id = stream.key.camera_id
        self.profile = stream.key.profile
        self.name = f"{stream.key}:{session_id[:8]}"
        self.grant = grant
        self._sub = subscription
        self._access = access
        self._cache = cache
        self._settings = settings
        self._on_closed = on_closed
        self._scratch = scratch
        self._fanout = fanout
        self._pending: tuple[PacketizedFrame, int] | None = None
        self.codec = "h264"
        """The codec negotiated with this viewer: the stream's own (H.264 or H.265)."""
        self.sender: RtpSendEngine | None = None
        """The engine sending this viewer's RTP, once negotiated."""
        self._owns_pc = connection is None
        if connection is None:
            self.pc = RTCPeerConnection(ice_configuration(settings))
            self._clock = RtpClock(random.getrandbits(31), settings.catchup_bitrate,
                                   settings.catchup_min_step)
        else:
            self.pc = connection.pc
            self.sender = connection.engine
            self._clock = connection.clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._close_task: asyncio.Task[None] | None = None
        self._resync_wanted = False
        self._last_resync = 0.0
        self._seen_drop_events = 0
        self.created = time.time()
        self.connected_at: float | None = None
        self.first_frame_at: float | None = None
        self.closed_at: float | None = None
        self.close_reason = ""
        self.connect_timed_out = False
        self.frames_caught_up = 0
        self.resyncs = 0
        self.keyframe_requests_answered = 0
        self.keyframe_requests_ignored = 0

    @property
    def closing(self) -> bool:
        return self._close_task is not None

    # -- negotiation --------------------------------------------------------------------------

    async def negotiate(self, offer_sdp: str, offered: OfferedVideo) -> str:
        """The SDP answer, for the codec the stream sends (``h264`` or ``h265``)."""
        self.codec = self.stream.media_info.video_codec.lower() or "h264"
        def make_sender(transport: RTCDtlsTransport) -> PassthroughSender:
            return PassthroughSender(
                transport,
                self.name,
                self._keyframe_requested,
                history_slots=self._settings.history_slots,
                gso=self._settings.udp_gso,
                scratch=self._scratch,
                compiled=self._settings.compiled_send,
            )

        async with asyncio.timeout(self._settings.negotiate_timeout):
            answer, sender = await answer_offer(
                self.pc, offer_sdp, offered, self.codec, make_sender,
                host_addresses=self._settings.host_addresses,
                public_addresses=self._settings.public_addresses,
            )
        self.sender = sender.engine
        return answer

    def start(self) -> None:
        """Begin sending once the viewer connects; called after the answer is returned."""
        if self._owns_pc:  # a shared connection's owner watches its state
            self.pc.on("connectionstatechange", self._connection_state_changed)
        loop = asyncio.get_running_loop()
        for coro, what in ((self._pump(), "pump"), (self._watch(), "watch")):
            task = loop.create_task(coro, name=f"relay:{self.name}:{what}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # -- ending -------------------------------------------------------------------------------

    def request_close(self, reason: str) -> asyncio.Task[None]:
        """Start ending the session (idempotent); the returned task finishes when it has."""
        if self._close_task is None:
            self._close_task = asyncio.get_running_loop().create_task(
                self._close(reason), name=f"relay:{self.name}:close"
            )
        return self._close_task

    async def aclose(self, reason: str) -> None:
        await asyncio.shield(self.request_close(reason))

    async def _close(self, reason: str) -> None:
        self.close_reason = reason
        log.info("viewer %s (%s) leaves: %s", self.name, self.grant.user, reason)
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                if self._owns_pc:
                    async with asyncio.timeout(_CLOSE_STEP_TIMEOUT):
                        await self.pc.close()
            except Exception as exc:  # noqa: BLE001 -- a broken transport must not keep the session alive
                log.warning("viewer %s: closing the peer connection failed: %r", self.name, exc)
            try:
                async with asyncio.timeout(_CLOSE_STEP_TIMEOUT):
                    await self._access.close_view(self.grant, reason)
            except Exception:
                log.exception("viewer %s: recording the end of the view failed", self.name)
        finally:
            self._sub.close(reason)
            self.closed_at = time.time()
            self._on_closed(self)

    def _connection_state_changed(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and self.connected_at is None:
            self.connected_at = time.time()
        elif state in ("failed", "closed"):
            self.request_close(f"WebRTC connection {state}")

    # -- sending ------------------------------------------------------------------------------

    async def _pump(self) -> None:
        try:
            reason = await self._send_frames()
        except StreamClosed as exc:
            reason = self._sub.close_reason or str(exc) or "stream closed"
        except ConnectionError as exc:
            reason = f"viewer connection lost ({exc})"
        except CodecNotSupported as exc:
            reason = str(exc)
        except TimeoutError:
            self.connect_timed_out = True
            reason = (
                f"viewer did not connect within {self._settings.connect_timeout:g} s "
                "(ICE or DTLS did not complete)"
            )
        except Exception:  # a bug must end this session cleanly, never leave it half-open
            log.exception("viewer %s: sending failed", self.name)
            reason = "internal relay error"
        self.request_close(reason)

    async def _send_frames(self) -> str:
        sender = self.sender
        if sender is None:
            return "not negotiated"
        async with asyncio.timeout(self._settings.connect_timeout):
            await sender.negotiated.wait()
        clock = self._clock
        cache = self._cache
        catching_up = True
        catchup_start = time.monotonic()
        paced = 0.0
        self._last_resync = catchup_start
        while True:
            if self._resync_wanted:
                self._resync_wanted = False
                if await self._resubscribe():
                    catching_up = True
                    catchup_start = time.monotonic()
                    paced = 0.0
            pending, self._pending = self._pending, None
            if pending is not None:  # left the shared loop with this frame unsent
                await sender.send_frame(*pending)
                continue
            sub = self._sub
            frame = sub.get_nowait()
            if frame is None:
                catching_up = False
                fanout = self._fanout
                if fanout is not None and self.first_frame_at is not None and sender.direct:
                    await fanout.serve(self)  # until a resync or a TURN path needs this loop
                    continue
                frame = await sub.get()
                if self._resync_wanted:
                    continue  # this frame is part of the GOP the resync replays
            self._check_frame(frame)
            packed = cache.get(frame)
            timestamp = clock.catchup(frame, packed.size) if catching_up else clock.live(frame)
            await sender.send_frame(packed, timestamp)
            if self.first_frame_at is None:
                self.first_frame_at = time.time()
            if catching_up:
                self.frames_caught_up += 1
                paced += clock.take_paced_seconds()
                ahead = paced - (time.monotonic() - catchup_start)
                await asyncio.sleep(ahead if ahead > 0.003 else 0)

    def _check_frame(self, frame: EncodedFrame) -> None:
        sub = self._sub
        if sub.drop_events != self._seen_drop_events:
            self._seen_drop_events = sub.drop_events
            self._keyframe_requested("overflow")
        if frame.codec != self.codec:
            raise CodecNotSupported(
                f"camera {self.camera_id} now sends {frame.codec}, but this viewer negotiated "
                f"{self.codec}; reconnect to negotiate again"
            )

    # -- the shared live loop (relay.fanout.Member) ---------------------------------------------

    @property
    def subscription(self) -> Subscription:
        return self._sub

    def send_queued(self, first: EncodedFrame | None) -> int:
        """Send live frames from the stream's shared loop: ``first`` and what is queued."""
        sub = self._sub
        sender = self.sender
        assert sender is not None
        cache = self._cache
        clock = self._clock
        sent = 0
        frame = first if first is not None else sub.get_nowait()
        while frame is not None:
            if self._resync_wanted:
                raise LeaveFanout  # this frame is part of the GOP the resync replays
            if sub.drop_events != self._seen_drop_events or frame.codec != self.codec:
                self._check_frame(frame)
            packed = cache.get(frame)
            timestamp = clock.live(frame)
            if not sender.send_now(packed, timestamp):
                self._pending = (packed, timestamp)
                raise LeaveFanout
            sent += 1
            frame = sub.get_nowait()
        return sent

    async def _resubscribe(self) -> bool:
        """Replace the subscription by a new one holding the current GOP."""
        gop = len(self.stream.gop_snapshot())
        if not gop:
            return False
        new = await self.stream.subscribe(
            self._sub.name,
            maxsize=self.stream.settings.subscriber_queue + gop,
            wait=False,
            replay_gop=True,
        )
        old, self._sub = self._sub, new
        old.close("resynchronized from the GOP cache")
        self._seen_drop_events = 0
        self.resyncs += 1
        return True

    def keyframe_requested(self, kind: str) -> None:
        """The viewer asked for a keyframe (PLI, FIR) or its queue overflowed."""
        self._keyframe_requested(kind)

    def _keyframe_requested(self, kind: str) -> None:
        now = time.monotonic()
        if now - self._last_resync < self._settings.keyframe_request_interval:
            self.keyframe_requests_ignored += 1
            return
        self._last_resync = now
        self._resync_wanted = True
        self.keyframe_requests_answered += 1
        log.debug("viewer %s: %s answered from the GOP cache", self.name, kind)

    async def _watch(self) -> None:
        """End the session when media has been flowing for ``viewer_timeout`` seconds without
        a single RTCP packet back (the viewer vanished without a goodbye)."""
        silent = 0.0
        last_sent = last_rtcp = 0
        while True:
            await asyncio.sleep(1.0)
            sender = self.sender
            if sender is None or not sender.ready:
                continue
            if sender.rtcp_received != last_rtcp:
                silent = 0.0
            elif sender.packets_sent != last_sent:
                silent += 1.0
            last_sent, last_rtcp = sender.packets_sent, sender.rtcp_received
            if silent >= self._settings.viewer_timeout:
                self.request_close(
                    f"viewer stopped answering (no RTCP for {silent:g} s while sending)"
                )
                return

    # -- observability ------------------------------------------------------------------------

    def stats(self) -> dict[str, object]:
        now = time.time()

        def since(moment: float | None) -> float | None:
            return round(moment - self.created, 3) if moment is not None else None

        return {
            "session_id": self.session_id,
            "camera_id": self.camera_id,
            "profile": self.profile,
            "user": self.grant.user,
            "purpose": self.grant.purpose,
            "state": self.pc.connectionState,
            "age": round(now - self.created, 3),
            "connected_after": since(self.connected_at),
            "first_frame_after": since(self.first_frame_at),
            "frames_caught_up": self.frames_caught_up,
            "resyncs": self.resyncs,
            "keyframe_requests_answered": self.keyframe_requests_answered,
            "keyframe_requests_ignored": self.keyframe_requests_ignored,
            "subscription": self._sub.stats(now),
            "rtp": self.sender.stats() if self.sender is not None else {},
            "close_reason": self.close_reason,
        }
