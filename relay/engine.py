"""The RTP/SRTP send engine of one viewer: shared H.264 payloads written straight to its socket.

The engine knows nothing of aiortc: ``relay.sender`` (the thin aiortc adapter) negotiates, runs
ICE and DTLS, hands the engine its RTP parameters and a ``MediaPath`` (SRTP session, socket and
address of the nominated ICE pair) and forwards the viewer's RTCP to it. The relay calls
``send_now`` (or ``send_frame``) with a frame packetized once per stream.

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
from collections.abc import Callable, Iterable, Sequence

from relay import fastpath
from relay.history import DEFAULT_SLOTS, NackHistory
from relay.nack import Retransmitter
from relay.packets import PacketizedFrame
from relay.path import DirectResources, DirectRoute, MediaPath, Route, RtpParameters
from relay.rtcp import ReceptionReport, ReportExchange, bye_packet, ntp_time
from relay.rtp_header import RTP_HEADER, HeaderExtensions, header_struct
from relay.srtp import InPlaceProtector, ScratchBuffer
from relay.timing import SYSTEM_CLOCK, Clock
from relay.udp import MAX_BATCH_BYTES, DatagramWriter, plan_batches
from rtcc.tasks import cancel_and_wait

_REPORT_CHECK = 5.0
"""Seconds between checks of the fallback sender-report task while reports go out inline."""
SCRATCH_BYTES = MAX_BATCH_BYTES + 8192
"""A batch of datagrams plus room for one more packet and its SRTP trailer."""


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
        compiled: bool = True,
    ) -> None:
        self.name = name
        self._path = path
        self._connected = path.connected
        self._on_keyframe_request = on_keyframe_request
        self._history = NackHistory(history_slots)
        self._scratch = scratch
        self._direct = DirectResources(scratch, gso,
                                       fastpath.BATCH_PROTECT if compiled else None,
                                       fastpath.SEND_FRAME if compiled else None)
        self._clock = clock
        self._monotonic = clock.monotonic
        self._wall = clock.wall
        self._retransmitter = Retransmitter(self._history, clock.monotonic)
        self._fast: DirectRoute | None = None
        self._extensions = HeaderExtensions(b"", 0, 0, clock.wall)
        self._reports = ReportExchange(0, b"", clock)
        self.negotiated = asyncio.Event()
        self._stopped = False
        self._rtcp_task: asyncio.Task[None] | None = None
        self._pt = 0
        self._ssrc_media = 0
        self._seq = random.randrange(32768)
        self._last_ts = 0
        self._last_send = 0.0
        # statistics
        self.packets_sent = 0
        self.octets_sent = 0
        self.frames_sent = 0
        self.packets_dropped = 0
        self.nacks = 0
        self.packets_retransmitted = 0
        self.plis = 0
        self.firs = 0
        self.rtcp_received = 0
        self.last_rtcp = 0.0

    # -- start and stop -----------------------------------------------------------------------

    def start(self, parameters: RtpParameters) -> None:
        """Begin with what negotiation decided (once DTLS is up)."""
        if self.negotiated.is_set() or self._stopped:
            return
        self._pt = parameters.payload_type
        self._ssrc_media = parameters.ssrc
        self._extensions = HeaderExtensions(parameters.mid, parameters.mid_extension_id,
                                            parameters.abs_send_time_extension_id, self._wall)
        self._reports = ReportExchange(parameters.ssrc, parameters.cname, self._clock)
        self._retransmitter.configure(parameters)
        self._rtcp_task = asyncio.get_running_loop().create_task(
            self._run_rtcp(), name=f"relay:{self.name}:rtcp"
        )
        self.negotiated.set()

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        task, self._rtcp_task = self._rtcp_task, None
        await cancel_and_wait(task)
        if self.negotiated.is_set() and self.packets_sent:
            with contextlib.suppress(ConnectionError):
                await self._path.send_rtcp(bye_packet(self._ssrc_media))
        self._history.clear()
        self._direct.close()

    @property
    def ssrc(self) -> int:
        """The SSRC of the media packets (0 until negotiated)."""
        return self._ssrc_media

    @property
    def next_seq(self) -> int:
        """The sequence number the next media packet will carry."""
        return self._seq

    @property
    def retransmit_misses(self) -> int:
        return self._retransmitter.misses

    @property
    def retransmits_refused(self) -> int:
        return self._retransmitter.refused

    @property
    def rtt(self) -> float | None:
        """The smoothed round-trip time in seconds, once measured."""
        return self._reports.rtt

    @property
    def ready(self) -> bool:
        return self.negotiated.is_set() and not self._stopped

    @property
    def compiled(self) -> bool:
        """True when frames go out through the compiled packet loop (``relay.fastpath``)."""
        route = self._fast
        return route is not None and (route.compiled is not None
                                      or route.send_frame is not None)

    @property
    def send_loop(self) -> str:
        """How frames go out: ``compiled`` (``relay.fastpath``, the send included),
        ``compiled-protect`` (compiled write and protect, sent from Python), ``python``, or
        ``checked`` while no frame has gone straight to the socket yet (or a TURN path)."""
        route = self._fast
        if route is None:
            return "checked"
        if route.send_frame is not None:
            return "compiled"
        return "compiled-protect" if route.compiled is not None else "python"

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
        if (route is None or self._stopped or not self._connected()
                or self._path.srtp() is not route.srtp):  # new keys: the old context is stale
            return self._send_checked(frame, timestamp)
        (protect, context, cell, scratch, writer, sendmsg, addr, tag_length, compiled,
         protect_address, context_address, send_frame, fd, packed_address, _) = route
        extension = self._extensions.block()
        first = 0x90 if extension else 0x80
        pt = self._pt
        ssrc = self._ssrc_media
        seq = start_seq = self._seq
        buffer = scratch.data
        view = scratch.view
        dropped = writer.dropped
        if send_frame is not None:
            # the compiled loop, send included: one call per frame
            payloads = frame.payloads
            try:
                lost, calls, refused = send_frame(
                    fd, packed_address, buffer, payloads,
                    frame.batches or plan_batches([len(p) for p in payloads]), len(payloads) - 1,
                    header_struct(len(extension)).pack(first, pt, 0, timestamp, ssrc, extension),
                    seq, protect_address, context_address, writer.gso)
            except ConnectionError:
                # earlier batches may be out: never protect these sequence numbers again
                self._fast = None
                self._seq = (start_seq + len(payloads)) & 0xFFFF
                raise
            writer.calls += calls
            if lost:
                writer.dropped += lost
            if refused:
                writer.segmentation_refused(refused)
            self._sent(frame, timestamp, start_seq, (seq + len(payloads)) & 0xFFFF, writer,
                       dropped, addr)
            return True
        if compiled is not None:
            # the compiled loop: no shared layout, each run written straight from the payloads
            header = header_struct(len(extension)).pack(first, pt, 0, timestamp, ssrc,
                                                        extension)
            payloads = frame.payloads
            last = len(payloads) - 1
            for start, end in frame.batches or plan_batches([len(p) for p in payloads]):
                try:
                    size, segment = compiled(buffer, payloads, start, end, last, header, seq,
                                             protect_address, context_address)
                except ConnectionError:
                    # earlier batches are out: never protect these sequence numbers again
                    self._fast = None
                    self._seq = (start_seq + len(payloads)) & 0xFFFF
                    raise
                seq = (seq + end - start) & 0xFFFF
                if end - start > 1 and writer.gso:
                    try:
                        sendmsg((view[:size],), writer.segment_options(segment), 0, addr)
                    except OSError as exc:
                        writer.segmented_send_failed(exc, view[:size], segment, end - start,
                                                     addr)
                else:
                    writer.send_segments(view[:size], segment, end - start, addr)
            self._sent(frame, timestamp, start_seq, seq, writer, dropped, addr)
            return True
        pack_into = header_struct(len(extension)).pack_into
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
                    self._seq = (start_seq + len(frame.payloads)) & 0xFFFF  # never reused
                    raise ConnectionError("SRTP protection failed")
                seq = (seq + 1) & 0xFFFF
            if cell[0] != length + tag_length:  # the layout assumed another tag length
                self._fast = self._direct.tag_length = None
                raise ConnectionError("SRTP tag length changed")
            if len(packets) > 1 and writer.gso:
                try:
                    sendmsg((view[:size],), writer.segment_options(segment), 0, addr)
                except OSError as exc:
                    writer.segmented_send_failed(exc, view[:size], segment, len(packets), addr)
            else:
                writer.send_segments(view[:size], segment, len(packets), addr)
        self._sent(frame, timestamp, start_seq, seq, writer, dropped, addr)
        return True

    def _sent(self, frame: PacketizedFrame, timestamp: int, start_seq: int, seq: int,
              writer: DatagramWriter, dropped: int, addr: tuple[str, int]) -> None:
        """Book a frame sent directly: history, counters, and a sender report when due."""
        self._seq = seq
        self._history.record_frame(start_seq, timestamp, frame.payloads)
        if writer.dropped != dropped:
            self.packets_dropped += writer.dropped - dropped
        self.packets_sent += len(frame.payloads)
        self.octets_sent += frame.size
        self.frames_sent += 1
        self._last_ts = timestamp
        now = self._last_send = self._monotonic()
        if now >= self._reports.next_due:
            self._report_inline(timestamp, writer, addr)

    def _send_checked(self, frame: PacketizedFrame, timestamp: int) -> bool:
        """``send_now`` with every check made: the first frames of a session, or after a
        change. Sets up the kept route when the path allows."""
        self._fast = None
        route = self._route()
        transport = route.transport
        if transport is None:
            return False
        direct = self._direct
        writer = direct.writer_for(transport)
        protector = direct.protector_for(route.srtp)
        self._fast = direct.direct_route(writer, protector, route.addr)
        if self._fast is None:
            self._send_packets(frame, timestamp, writer, route.addr, protector)
            self._count(frame, timestamp)
            return True
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
        tag_length = None
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
                tag_length = protected - length
                segment = segment or protected
                offset += protected
                seq = (seq + 1) & 0xFFFF
            writer.send_segments(view[:offset], segment, end - start, addr)
        if tag_length is not None:
            self._direct.tag_length = tag_length
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

    # -- RTCP from the viewer (forwarded by the adapter) --------------------------------------

    def rtcp_arrived(self) -> None:
        """Count one RTCP packet routed to this engine (a sign of life of the viewer)."""
        self.rtcp_received += 1
        self.last_rtcp = self._monotonic()

    def reception_reports(self, reports: Iterable[ReceptionReport]) -> None:
        """Loss, jitter and round-trip time from the blocks about this engine's stream."""
        for report in reports:
            if self._reports.received(report):
                self._extensions.send_mid = False  # the receiver knows our SSRC now

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
        datagrams = self._retransmitter.datagrams(lost, self._extensions.block(),
                                                  route.srtp.protect, self.packets_sent)
        if not datagrams:
            return
        try:
            if route.transport is not None:
                self._direct.writer_for(route.transport).send(datagrams, route.addr)
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
            if not self.packets_sent or monotonic() < self._reports.next_due:
                continue
            elapsed = monotonic() - self._last_send
            data = self._reports.sender_report(ntp_time(self._wall()),
                                               self._last_ts + int(elapsed * 90_000),
                                               self.packets_sent, self.octets_sent)
            try:
                await self._path.send_rtcp(data)
            except ConnectionError:
                return

    def _report_inline(self, timestamp: int, writer: DatagramWriter,
                       addr: tuple[str, int]) -> None:
        srtp = self._path.srtp()
        if srtp is not None:
            report = self._reports.sender_report(ntp_time(self._wall()), timestamp,
                                                 self.packets_sent, self.octets_sent)
            writer.send([srtp.protect_rtcp(report)], addr)

    def stats(self) -> dict[str, object]:
        reports = self._reports
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
            "fraction_lost": round(reports.fraction_lost, 4),
            "packets_lost": reports.packets_lost,
            "jitter_ms": round(reports.jitter / 90, 2),
            "rtt_ms": round(reports.rtt * 1000, 2) if reports.rtt is not None else None,
            "send_loop": self.send_loop,
        }
