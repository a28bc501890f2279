"""The RTP/SRTP send engine of one viewer: shared H.264 payloads written straight to its socket.

aiortc's own ``RTCRtpSender`` pulls frames from a track, packetizes them again for every viewer,
builds an ``RtpPacket`` object per packet, awaits four coroutines per datagram, keeps 128 packets
of history (half a second of 2 Mbit/s video) and ignores PLI/FIR when it has no encoder. This
engine does the sending instead; it knows nothing of aiortc. ``relay.sender`` (the thin aiortc
adapter) negotiates, runs ICE and DTLS, hands the engine its RTP parameters and a ``MediaPath``
(SRTP session, socket and address of the nominated ICE pair) and forwards the viewer's RTCP to
it; the relay calls ``send_now`` (or ``send_frame``) with a frame packetized once per stream.

Per frame and viewer the work is: copy each batch of the frame's shared layout (payloads with
room for header and tag, see ``relay.packets.FrameLayout``) into the application's scratch
buffer, write each packet's header with one ``struct.pack_into``, let libsrtp protect each packet
where it lies (``relay.srtp``), and hand the batch to the kernel with one ``sendmsg`` using UDP
segmentation offload (``relay.udp``). No object is made per packet; the NACK history keeps one
tuple per frame. A path through a TURN relay goes through that path's own awaited send instead.
Retransmissions use RTX when negotiated. Keyframe requests (PLI/FIR) are passed to the viewer,
which answers them from the GOP cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from asyncio import DatagramTransport
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, NamedTuple, Protocol

from relay.history import DEFAULT_SLOTS, NackHistory
from relay.nack import RetransmitBudget
from relay.packets import PacketizedFrame
from relay.rtcp import ReceptionReport, bye_packet, ntp_time, sdes_packet, sender_report
from relay.rtp_header import RTP_HEADER, HeaderExtensions, header_struct
from relay.srtp import InPlaceProtector, ScratchBuffer, SrtpSession
from relay.timing import SYSTEM_CLOCK, Clock
from relay.udp import MAX_BATCH_BYTES, DatagramWriter, plan_batches

_REPORT_CHECK = 5.0
"""Seconds between checks of the fallback sender-report task while reports go out inline."""
SCRATCH_BYTES = MAX_BATCH_BYTES + 8192
"""A batch of datagrams plus room for one more packet and its SRTP trailer."""
_RTT_ALPHA = 0.85


class RtpParameters(NamedTuple):
    """What negotiation decided for the viewer's video stream."""

    payload_type: int
    ssrc: int
    rtx_payload_type: int | None
    """The RTX payload type for ``payload_type``, None when retransmissions go unwrapped."""
    rtx_ssrc: int
    mid: bytes
    mid_extension_id: int
    """0 when the MID header extension was not negotiated."""
    abs_send_time_extension_id: int
    cname: bytes


class Route(NamedTuple):
    """Where the viewer's packets go now, and with which keys."""

    srtp: SrtpSession
    transport: DatagramTransport | None
    """The ICE pair's own UDP socket; None when the pair is wrapped (a TURN relay)."""
    addr: tuple[str, int]
    send_data: Callable[[bytes, tuple[str, int]], Awaitable[None]]
    """The pair's own send, for a wrapped pair."""


class MediaPath(Protocol):
    """The viewer's connection as the engine sees it (ICE and DTLS are run elsewhere)."""

    def connected(self) -> bool:
        """True while DTLS is up (the route's keys and pair are still those of the session)."""

    def srtp(self) -> SrtpSession | None:
        """The outbound SRTP session, None unless connected."""

    def route(self) -> Route:
        """The current route; raises ConnectionError when there is none."""

    async def send_rtcp(self, data: bytes) -> None:
        """Protect and send an RTCP packet on the connection's own path."""


class _FastRoute(NamedTuple):
    """A route kept once frames went out directly: everything ``send_now`` needs."""

    protect: Any
    context: Any
    cell: Any
    scratch: ScratchBuffer
    writer: DatagramWriter
    sendmsg: Callable[..., int]
    addr: tuple[str, int]
    tag_length: int


class RtpSendEngine:
    """Sends pre-packetized H.264 to one viewer over SRTP, answers its RTCP."""

    def __init__(
        self,
        path: MediaPath,
        name: str,
        on_keyframe_request: Callable[[str], None],
        scratch: ScratchBuffer,
        history_slots: int = DEFAULT_SLOTS,
        gso: bool = True,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.name = name
        self._path = path
        self._connected = path.connected
        self._on_keyframe_request = on_keyframe_request
        self._history = NackHistory(history_slots)
        self._gso = gso
        self._scratch = scratch
        self._monotonic = clock.monotonic
        self._wall = clock.wall
        self._budget = RetransmitBudget(clock.monotonic)
        self._protector: InPlaceProtector | None = None
        self._tag_length: int | None = None
        self._fast: _FastRoute | None = None
        self._extensions = HeaderExtensions(b"", 0, 0, clock.wall)
        self._writer: DatagramWriter | None = None
        self._writer_transport: DatagramTransport | None = None
        self.negotiated = asyncio.Event()
        self._stopped = False
        self._rtcp_task: asyncio.Task[None] | None = None
        self._pt = 0
        self._ssrc_media = 0
        self._ssrc_rtx = 0
        self._rtx_pt: int | None = None
        self._cname = b""
        self._seq = random.randrange(32768)
        self._rtx_seq = random.randrange(32768)
        self._last_ts = 0
        self._last_send = 0.0
        self._lsr = 0
        self._lsr_time = 0.0
        self._sdes = b""
        self._next_report = 0.0
        # statistics
        self.packets_sent = 0
        self.octets_sent = 0
        self.frames_sent = 0
        self.packets_dropped = 0
        self.nacks = 0
        self.packets_retransmitted = 0
        self.retransmit_misses = 0
        self.retransmits_refused = 0
        self.plis = 0
        self.firs = 0
        self.rtcp_received = 0
        self.last_rtcp = 0.0
        self.fraction_lost = 0.0
        self.packets_lost = 0
        self.jitter = 0
        self.rtt: float | None = None

    # -- start and stop -----------------------------------------------------------------------

    def start(self, parameters: RtpParameters) -> None:
        """Begin with what negotiation decided (once DTLS is up)."""
        if self.negotiated.is_set() or self._stopped:
            return
        self._pt = parameters.payload_type
        self._rtx_pt = parameters.rtx_payload_type
        self._ssrc_media = parameters.ssrc
        self._ssrc_rtx = parameters.rtx_ssrc
        self._cname = parameters.cname
        self._extensions = HeaderExtensions(parameters.mid, parameters.mid_extension_id,
                                            parameters.abs_send_time_extension_id, self._wall)
        self._rtcp_task = asyncio.get_running_loop().create_task(
            self._run_rtcp(), name=f"relay:{self.name}:rtcp"
        )
        self.negotiated.set()

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        task, self._rtcp_task = self._rtcp_task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
        if self.negotiated.is_set() and self.packets_sent:
            with contextlib.suppress(ConnectionError):
                await self._path.send_rtcp(bye_packet(self._ssrc_media))
        self._history.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._writer_transport = None

    @property
    def ssrc(self) -> int:
        """The SSRC of the media packets (0 until negotiated)."""
        return self._ssrc_media

    @property
    def next_seq(self) -> int:
        """The sequence number the next media packet will carry."""
        return self._seq

    @property
    def ready(self) -> bool:
        return self.negotiated.is_set() and not self._stopped

    @property
    def direct(self) -> bool:
        """True when frames go straight to the viewer's UDP socket (no TURN relay)."""
        try:
            return self._route().transport is not None
        except ConnectionError:
            return False

    # -- media --------------------------------------------------------------------------------

    def send_now(self, frame: PacketizedFrame, timestamp: int) -> bool:
        """Send one frame's packets now, without awaiting anything, when the viewer's candidate
        pair is a plain UDP socket; False (nothing sent) when it needs ``send_frame``. Raises
        ConnectionError once the viewer is gone.

        Once a frame has gone out directly, the route (SRTP context, socket, address, tag
        length) is kept and each further frame only checks that the engine and its DTLS
        transport are still up: the ICE pair and SRTP keys of a connection do not change.
        Each batch of the frame's shared layout is copied into the scratch buffer, its
        headers written, its packets protected in place, and sent with one system call.
        """
        route = self._fast
        if route is None or self._stopped or not self._connected():
            return self._send_checked(frame, timestamp)
        protect, context, cell, scratch, writer, sendmsg, addr, tag_length = route
        extension = self._extensions.block()
        pack_into = header_struct(len(extension)).pack_into
        first = 0x90 if extension else 0x80
        pt = self._pt
        ssrc = self._ssrc_media
        seq = start_seq = self._seq
        buffer = scratch.data
        view = scratch.view
        dropped = writer.dropped
        layout = frame.layout(12 + len(extension), tag_length, scratch)
        template = layout.template
        for start, end, segment, packets in layout.batches:
            size = end - start
            buffer[:size] = template[start:end]
            for address, offset, length, marker in packets:
                pack_into(buffer, offset, first, pt | marker, seq, timestamp, ssrc, extension)
                cell[0] = length
                if protect(context, address, cell):
                    self._fast = None
                    raise ConnectionError("SRTP protection failed")
                seq = (seq + 1) & 0xFFFF
            if cell[0] != length + tag_length:  # the layout assumed another tag length
                self._fast = self._tag_length = None
                raise ConnectionError("SRTP tag length changed")
            if len(packets) > 1 and writer.gso:
                try:
                    sendmsg((view[:size],), writer.segment_options(segment), 0, addr)
                except OSError as exc:
                    writer.segmented_send_failed(exc, view[:size], segment, len(packets), addr)
            else:
                writer.send_segments(view[:size], segment, len(packets), addr)
        self._seq = seq
        self._history.record_frame(start_seq, timestamp, frame.payloads)
        if writer.dropped != dropped:
            self.packets_dropped += writer.dropped - dropped
        self.packets_sent += len(frame.payloads)
        self.octets_sent += frame.size
        self.frames_sent += 1
        self._last_ts = timestamp
        now = self._last_send = self._monotonic()
        if now >= self._next_report:
            self._report_inline(timestamp, writer, addr)
        return True

    def _send_checked(self, frame: PacketizedFrame, timestamp: int) -> bool:
        """``send_now`` with every check made: the first frames of a session, or after a
        change. Sets up the kept route when the path allows."""
        self._fast = None
        route = self._route()
        transport = route.transport
        if transport is None:
            return False
        writer = self._writer_for(transport)
        protector = self._protector
        if protector is None or protector.session is not route.srtp:
            protector = self._protector = InPlaceProtector(route.srtp, self._scratch)
            self._tag_length = None
        raw = protector.raw()
        if raw is None or self._tag_length is None:
            self._send_packets(frame, timestamp, writer, route.addr, protector)
            self._count(frame, timestamp)
            return True
        self._fast = _FastRoute(raw.protect, raw.context, raw.cell, self._scratch, writer,
                                writer.sendmsg, route.addr, self._tag_length)
        return self.send_now(frame, timestamp)

    async def send_frame(self, frame: PacketizedFrame, timestamp: int) -> None:
        """Send one frame's packets now. Raises ConnectionError once the viewer is gone."""
        if self.send_now(frame, timestamp):
            return
        # a TURN relay or another wrapped path: use its own send
        route = self._route()
        await self._send_wrapped(frame, timestamp, route)
        self._count(frame, timestamp)

    def _route(self) -> Route:
        if self._stopped:
            raise ConnectionError("sender stopped")
        return self._path.route()

    def _count(self, frame: PacketizedFrame, timestamp: int) -> None:
        self.packets_sent += len(frame.payloads)
        self.octets_sent += frame.size
        self.frames_sent += 1
        self._last_ts = timestamp
        self._last_send = self._monotonic()

    def _send_packets(
        self,
        frame: PacketizedFrame,
        timestamp: int,
        writer: DatagramWriter,
        addr: tuple[str, int],
        protector: InPlaceProtector,
    ) -> None:
        """Send the frame packet by packet into the scratch buffer (the first frame of a
        session, which tells the SRTP tag length the shared layouts need)."""
        extension = self._extensions.block()
        pack_into = header_struct(len(extension)).pack_into
        header_length = 12 + len(extension)
        first = 0x90 if extension else 0x80
        seq = start_seq = self._seq
        payloads = frame.payloads
        last = len(payloads) - 1
        buffer = self._scratch.data
        view = self._scratch.view
        dropped = writer.dropped
        for start, end in frame.batches or plan_batches([len(p) for p in payloads]):
            offset = 0
            segment = 0
            for index in range(start, end):
                payload = payloads[index]
                pack_into(buffer, offset, first, self._pt | (0x80 if index == last else 0), seq,
                          timestamp, self._ssrc_media, extension)
                length = header_length + len(payload)
                buffer[offset + header_length:offset + length] = payload
                protected = protector.protect(offset, length)
                self._tag_length = protected - length
                segment = segment or protected
                offset += protected
                seq = (seq + 1) & 0xFFFF
            writer.send_segments(view[:offset], segment, end - start, addr)
        self._seq = seq
        self._history.record_frame(start_seq, timestamp, payloads)
        self.packets_dropped += writer.dropped - dropped

    async def _send_wrapped(self, frame: PacketizedFrame, timestamp: int, route: Route) -> None:
        extension = self._extensions.block()
        first = 0x90 if extension else 0x80
        seq = start_seq = self._seq
        payloads = frame.payloads
        last = len(payloads) - 1
        protect = route.srtp.protect
        for index, payload in enumerate(payloads):
            marker = 0x80 if index == last else 0
            header = RTP_HEADER.pack(first, marker | self._pt, seq, timestamp, self._ssrc_media)
            await route.send_data(protect(b"".join((header, extension, payload))), route.addr)
            seq = (seq + 1) & 0xFFFF
        self._seq = seq
        self._history.record_frame(start_seq, timestamp, payloads)

    def _writer_for(self, transport: DatagramTransport) -> DatagramWriter:
        if transport.is_closing():
            raise ConnectionError("the viewer's socket is closed")
        writer = self._writer
        if writer is None or self._writer_transport is not transport:
            if writer is not None:
                writer.close()
            writer = self._writer = DatagramWriter(transport, gso=self._gso)
            self._writer_transport = transport
        return writer

    # -- RTCP from the viewer (forwarded by the adapter) --------------------------------------

    def rtcp_arrived(self) -> None:
        """Count one RTCP packet routed to this engine (a sign of life of the viewer)."""
        self.rtcp_received += 1
        self.last_rtcp = self._monotonic()

    def reception_reports(self, reports: Iterable[ReceptionReport]) -> None:
        """Loss, jitter and round-trip time from the blocks about this engine's stream."""
        for report in reports:
            if report.ssrc != self._ssrc_media:
                continue
            self._extensions.send_mid = False  # the receiver knows our SSRC now
            self.fraction_lost = report.fraction_lost / 256
            self.packets_lost = report.packets_lost
            self.jitter = report.jitter
            if report.lsr and report.lsr == self._lsr and report.dlsr:
                rtt = self._wall() - self._lsr_time - report.dlsr / 65536
                self.rtt = rtt if self.rtt is None else (
                    _RTT_ALPHA * self.rtt + (1 - _RTT_ALPHA) * rtt
                )

    def picture_loss(self) -> None:
        """A PLI: the viewer asks for a keyframe."""
        self.plis += 1
        self._on_keyframe_request("pli")

    def full_intra_request(self) -> None:
        """A FIR: the viewer asks for a keyframe."""
        self.firs += 1
        self._on_keyframe_request("fir")

    async def nack(self, lost: Sequence[int]) -> None:
        """Retransmit the packets a NACK names that the history still holds, within the
        retransmission budget."""
        self.nacks += 1
        try:
            route = self._route()
        except ConnectionError:
            return
        srtp = route.srtp
        extension = self._extensions.block()
        first = 0x90 if extension else 0x80
        datagrams = []
        for seq in lost:
            if not self._budget.allow(self.packets_sent):
                self.retransmits_refused += 1
                continue
            entry = self._history.get(seq)
            if entry is None:
                self.retransmit_misses += 1
                continue
            timestamp, payload, marker = entry
            if self._rtx_pt is not None:
                header = RTP_HEADER.pack(first, marker | self._rtx_pt, self._rtx_seq, timestamp,
                                         self._ssrc_rtx)
                self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
                body = seq.to_bytes(2, "big") + payload
            else:
                header = RTP_HEADER.pack(first, marker | self._pt, seq, timestamp,
                                         self._ssrc_media)
                body = payload
            datagrams.append(srtp.protect(b"".join((header, extension, body))))
        if not datagrams:
            return
        try:
            if route.transport is not None:
                self._writer_for(route.transport).send(datagrams, route.addr)
            else:
                for datagram in datagrams:
                    await route.send_data(datagram, route.addr)
        except ConnectionError:
            return
        self.packets_retransmitted += len(datagrams)

    # -- RTCP to the viewer -------------------------------------------------------------------

    async def _run_rtcp(self) -> None:
        """Sender reports for frames sent through ``send_frame``'s awaited path; frames sent
        directly carry theirs inline (``send_now``), and then this task only checks rarely."""
        monotonic = self._monotonic
        while True:
            await asyncio.sleep(_REPORT_CHECK if self._fast is not None else 0.5 + random.random())
            if not self.packets_sent or monotonic() < self._next_report:
                continue
            elapsed = monotonic() - self._last_send
            data = self._report(ntp_time(self._wall()), self._last_ts + int(elapsed * 90_000))
            try:
                await self._path.send_rtcp(data)
            except ConnectionError:
                return

    def _report_inline(self, timestamp: int, writer: DatagramWriter,
                       addr: tuple[str, int]) -> None:
        srtp = self._path.srtp()
        if srtp is not None:
            writer.send([srtp.protect_rtcp(self._report(ntp_time(self._wall()), timestamp))], addr)

    def _report(self, ntp: int, rtp_timestamp: int) -> bytes:
        """A sender report (and the CNAME) as of ``ntp``; schedules the next one."""
        if self._cname and not self._sdes:
            self._sdes = sdes_packet(self._ssrc_media, self._cname)
        self._lsr = (ntp >> 16) & 0xFFFFFFFF
        self._lsr_time = self._wall()
        self._next_report = self._monotonic() + 0.5 + random.random()
        return sender_report(self._ssrc_media, ntp, rtp_timestamp, self.packets_sent,
                             self.octets_sent) + self._sdes

    def stats(self) -> dict[str, object]:
        return {
            "packets": self.packets_sent,
            "bytes": self.octets_sent,
            "frames": self.frames_sent,
            "packets_dropped": self.packets_dropped,
            "nacks": self.nacks,
            "retransmitted": self.packets_retransmitted,
            "retransmit_misses": self.retransmit_misses,
            "retransmits_refused": self.retransmits_refused,
            "plis": self.plis,
            "firs": self.firs,
            "fraction_lost": round(self.fraction_lost, 4),
            "packets_lost": self.packets_lost,
            "jitter_ms": round(self.jitter / 90, 2),
            "rtt_ms": round(self.rtt * 1000, 2) if self.rtt is not None else None,
        }
