"""The RTP sender of one viewer: shared H.264 payloads written straight to its SRTP session.

aiortc's own ``RTCRtpSender`` pulls frames from a track, packetizes them again for every viewer,
builds an ``RtpPacket`` object per packet, awaits four coroutines per datagram, keeps 128 packets
of history (half a second of 2 Mbit/s video) and ignores PLI/FIR when it has no encoder. This
sender replaces the sending half: aiortc still negotiates, runs ICE and DTLS and routes the
viewer's RTCP here; the relay calls ``send_now`` (or ``send_frame``) with a frame packetized once
per stream.

Per frame and viewer the work is: copy each batch of the frame's shared layout (payloads with
room for header and tag, see ``relay.packets.FrameLayout``) into the application's scratch
buffer, write each packet's header with one ``struct.pack_into``, let libsrtp protect each packet
where it lies (``relay.srtp``), and hand the batch to the kernel with one ``sendmsg`` using UDP
segmentation offload (``relay.udp``). No object is made per packet; the NACK history keeps one
tuple per frame. A pair through a TURN relay goes through aioice's own send path instead.
Retransmissions use RTX when negotiated. Keyframe requests (PLI/FIR) are passed to the viewer,
which answers them from the GOP cache. Everything this sender needs from aiortc's private state
(SRTP session, ICE pair, RTCP routing, SSRCs) goes through ``relay.aiortc_adapter``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import random
import struct
import time
from collections.abc import Callable
from time import monotonic
from typing import Any

from aioice.ice import CandidatePair, StunProtocol
from aiortc import RTCRtpSender
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from aiortc.rtp import (
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
)
from aiortc.stats import RTCOutboundRtpStreamStats, RTCStatsReport

from relay import aiortc_adapter as aiortc
from relay.aiortc_adapter import SrtpSession
from relay.history import DEFAULT_SLOTS, NackHistory
from relay.packets import PacketizedFrame
from relay.rtcp import ntp_now, sdes_packet, sender_report
from relay.srtp import InPlaceProtector, ScratchBuffer
from relay.udp import MAX_BATCH_BYTES, DatagramWriter, plan_batches

log = logging.getLogger(__name__)

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"

_HEADER = struct.Struct("!BBHII")
_REPORT_CHECK = 5.0
"""Seconds between checks of the fallback sender-report task while reports go out inline."""
SCRATCH_BYTES = MAX_BATCH_BYTES + 8192
"""A batch of datagrams plus room for one more packet and its SRTP trailer."""
_RTT_ALPHA = 0.85


class PassthroughSender(RTCRtpSender):
    """Sends pre-packetized H.264 to one viewer. Created by the relay in place of aiortc's
    sender of a send-only video transceiver, before the offer is applied."""

    def __init__(
        self,
        transport: RTCDtlsTransport,
        name: str,
        on_keyframe_request: Callable[[str], None],
        history_slots: int = DEFAULT_SLOTS,
        gso: bool = True,
        scratch: ScratchBuffer | None = None,
    ) -> None:
        super().__init__("video", transport)
        self.name = name
        self._on_keyframe_request = on_keyframe_request
        self._history = NackHistory(history_slots)
        self._gso = gso
        self._scratch = scratch or ScratchBuffer(SCRATCH_BYTES)
        self._protector: InPlaceProtector | None = None
        self._tag_length: int | None = None
        self._fast: tuple[Any, ...] | None = None
        self._ext_parts: tuple[bool, bytes, bytes] | None = None
        self._headers: dict[int, struct.Struct] = {}
        self._writer: DatagramWriter | None = None
        self._writer_protocol: StunProtocol | None = None
        self.negotiated = asyncio.Event()
        self._stopped = False
        self._registered = False
        self._rtcp_task: asyncio.Task[None] | None = None
        self._pt = 0
        self._ssrc_media = 0
        self._ssrc_rtx = 0
        self._rtx_pt: int | None = None
        self._mid = b""
        self._mid_id = 0
        self._abs_id = 0
        self._cname = b""
        self._send_mid = True
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
        self._rtx_window_start = 0.0
        self._rtx_window_count = 0
        self._rtx_window_sent = 0
        self.plis = 0
        self.firs = 0
        self.rtcp_received = 0
        self.last_rtcp = 0.0
        self.fraction_lost = 0.0
        self.packets_lost = 0
        self.jitter = 0
        self.rtt: float | None = None

    # -- negotiation (called by RTCPeerConnection once DTLS is up) -----------------------------

    async def send(self, parameters: RTCRtpSendParameters) -> None:
        if self.negotiated.is_set() or self._stopped:
            return
        codec = parameters.codecs[0]
        if codec.mimeType.lower() != "video/h264" or codec.payloadType is None:
            log.warning("viewer %s: negotiated %s, not H.264; nothing will be sent",
                        self.name, codec.mimeType)
            return
        self._pt = codec.payloadType
        for candidate in parameters.codecs:
            if (
                candidate.mimeType.lower() == "video/rtx"
                and candidate.parameters.get("apt") == codec.payloadType
            ):
                self._rtx_pt = candidate.payloadType
                break
        for extension in parameters.headerExtensions:
            if extension.uri == MID_URI:
                self._mid_id = extension.id
            elif extension.uri == ABS_SEND_TIME_URI:
                self._abs_id = extension.id
        self._mid = (parameters.muxId or "").encode()[:16]
        if not self._mid:
            self._mid_id = 0
        self._cname = (parameters.rtcp.cname or "").encode()
        self._ssrc_media, self._ssrc_rtx = aiortc.sender_ssrcs(self)
        aiortc.register_sender(self.transport, self, parameters)
        self._registered = True
        self._rtcp_task = asyncio.get_running_loop().create_task(
            self._run_rtcp(), name=f"relay:{self.name}:rtcp"
        )
        self.negotiated.set()

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._registered:
            aiortc.unregister_sender(self.transport, self)
        task, self._rtcp_task = self._rtcp_task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
        if self._registered and self.packets_sent:
            with contextlib.suppress(ConnectionError):
                await aiortc.send_rtcp(self.transport,
                                        bytes(RtcpByePacket(sources=[self._ssrc_media])))
        self._history.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._writer_protocol = None

    # -- media --------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.negotiated.is_set() and not self._stopped

    @property
    def direct(self) -> bool:
        """True when frames go straight to the viewer's UDP socket (no TURN relay)."""
        try:
            return type(self._route()[1].protocol) is StunProtocol
        except ConnectionError:
            return False

    def send_now(self, frame: PacketizedFrame, timestamp: int) -> bool:
        """Send one frame's packets now, without awaiting anything, when the viewer's candidate
        pair is a plain UDP socket; False (nothing sent) when it needs ``send_frame``. Raises
        ConnectionError once the viewer is gone.

        Once a frame has gone out directly, the route (SRTP context, socket, address, tag
        length) is kept and each further frame only checks that the sender and its DTLS
        transport are still up: the ICE pair and SRTP keys of a connection do not change.
        Each batch of the frame's shared layout is copied into the scratch buffer, its
        headers written, its packets protected in place, and sent with one system call.
        """
        route = self._fast
        if route is None or self._stopped or not aiortc.dtls_connected(self.transport):
            return self._send_checked(frame, timestamp)
        protect, context, cell, scratch, writer, sendmsg, addr, tag_length = route
        extension = self._extension()
        pack_into = self._header_struct(len(extension)).pack_into
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
        now = self._last_send = monotonic()
        if now >= self._next_report:
            self._report_inline(timestamp, writer, addr)
        return True

    def _send_checked(self, frame: PacketizedFrame, timestamp: int) -> bool:
        """``send_now`` with every check made: the first frames of a session, or after a
        change. Sets up the kept route when the path allows."""
        self._fast = None
        srtp, pair = self._route()
        protocol = pair.protocol
        if type(protocol) is not StunProtocol:
            return False
        writer = self._writer_for(protocol)
        protector = self._protector
        if protector is None or protector.session is not srtp:
            protector = self._protector = InPlaceProtector(srtp, self._scratch)
            self._tag_length = None
        addr = pair.remote_addr
        raw = protector.raw()
        if raw is None or self._tag_length is None:
            self._send_packets(frame, timestamp, writer, addr, protector)
            self._count(frame, timestamp)
            return True
        protect, context, _pointer, cell = raw
        self._fast = (protect, context, cell, self._scratch, writer, writer.sendmsg, addr,
                      self._tag_length)
        return self.send_now(frame, timestamp)

    async def send_frame(self, frame: PacketizedFrame, timestamp: int) -> None:
        """Send one frame's packets now. Raises ConnectionError once the viewer is gone."""
        if self.send_now(frame, timestamp):
            return
        # a TURN relay or another transport aioice wraps: use its own send path
        srtp, pair = self._route()
        await self._send_wrapped(frame, timestamp, pair.protocol, pair.remote_addr, srtp)
        self._count(frame, timestamp)

    def _route(self) -> tuple[SrtpSession, CandidatePair]:
        if self._stopped:
            raise ConnectionError("sender stopped")
        srtp = aiortc.tx_srtp(self.transport)
        if srtp is None:
            raise ConnectionError("DTLS transport is not connected")
        pair = aiortc.nominated_pair(self.transport)
        if pair is None:
            raise ConnectionError("no ICE candidate pair is nominated")
        return srtp, pair

    def _count(self, frame: PacketizedFrame, timestamp: int) -> None:
        self.packets_sent += len(frame.payloads)
        self.octets_sent += frame.size
        self.frames_sent += 1
        self._last_ts = timestamp
        self._last_send = time.monotonic()

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
        extension = self._extension()
        pack_into = self._header_struct(len(extension)).pack_into
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

    async def _send_wrapped(
        self,
        frame: PacketizedFrame,
        timestamp: int,
        protocol: Any,
        addr: tuple[str, int],
        srtp: SrtpSession,
    ) -> None:
        extension = self._extension()
        first = 0x90 if extension else 0x80
        seq = start_seq = self._seq
        payloads = frame.payloads
        last = len(payloads) - 1
        for index, payload in enumerate(payloads):
            marker = 0x80 if index == last else 0
            header = _HEADER.pack(first, marker | self._pt, seq, timestamp, self._ssrc_media)
            await protocol.send_data(srtp.protect(b"".join((header, extension, payload))), addr)
            seq = (seq + 1) & 0xFFFF
        self._seq = seq
        self._history.record_frame(start_seq, timestamp, payloads)

    def _header_struct(self, extension_length: int) -> struct.Struct:
        header = self._headers.get(extension_length)
        if header is None:
            header = self._headers[extension_length] = struct.Struct(f"!BBHII{extension_length}s")
        return header

    def _writer_for(self, protocol: StunProtocol) -> DatagramWriter:
        if protocol.transport.is_closing():
            raise ConnectionError("the viewer's socket is closed")
        writer = self._writer
        if writer is None or self._writer_protocol is not protocol:
            if writer is not None:
                writer.close()
            writer = self._writer = DatagramWriter(protocol.transport, gso=self._gso)
            self._writer_protocol = protocol
        return writer

    def _extension(self) -> bytes:
        """The RTP header extension block: the MID until the viewer has reported on this SSRC,
        the absolute send time when negotiated (padded to 32 bits)."""
        parts = self._ext_parts
        if parts is None or parts[0] is not self._send_mid:
            parts = self._ext_parts = (self._send_mid, *self._extension_frame())
        _, head, tail = parts
        if not self._abs_id:
            return head
        return head + ((ntp_now() >> 14) & 0xFFFFFF).to_bytes(3, "big") + tail

    def _extension_frame(self) -> tuple[bytes, bytes]:
        """What comes before and after the 3-byte absolute send time."""
        body = b""
        if self._mid_id and self._send_mid:
            body += bytes(((self._mid_id << 4) | (len(self._mid) - 1),)) + self._mid
        if self._abs_id:
            body += bytes(((self._abs_id << 4) | 2,))
        size = len(body) + (3 if self._abs_id else 0)
        if not size:
            return b"", b""
        pad = b"\x00" * (-size % 4)
        head = b"\xbe\xde" + ((size + len(pad)) // 4).to_bytes(2, "big") + body
        return (head + pad, b"") if not self._abs_id else (head, pad)

    def _retransmit_allowed(self) -> bool:
        """At most as many retransmissions per second as packets sent in the previous second
        (and at least 100): a viewer cannot make the server amplify its NACKs."""
        now = time.monotonic()
        if now - self._rtx_window_start >= 1.0:
            self._rtx_window_count = max(100, self.packets_sent - self._rtx_window_sent)
            self._rtx_window_sent = self.packets_sent
            self._rtx_window_start = now
        if self._rtx_window_count <= 0:
            return False
        self._rtx_window_count -= 1
        return True

    async def _retransmit_packets(self, lost: list[int]) -> None:
        srtp = aiortc.tx_srtp(self.transport)
        pair = aiortc.nominated_pair(self.transport)
        if srtp is None or pair is None or self._stopped:
            return
        extension = self._extension()
        first = 0x90 if extension else 0x80
        datagrams = []
        for seq in lost:
            if not self._retransmit_allowed():
                self.retransmits_refused += 1
                continue
            entry = self._history.get(seq)
            if entry is None:
                self.retransmit_misses += 1
                continue
            timestamp, payload, marker = entry
            if self._rtx_pt is not None:
                header = _HEADER.pack(first, marker | self._rtx_pt, self._rtx_seq, timestamp,
                                      self._ssrc_rtx)
                self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
                body = seq.to_bytes(2, "big") + payload
            else:
                header = _HEADER.pack(first, marker | self._pt, seq, timestamp, self._ssrc_media)
                body = payload
            datagrams.append(srtp.protect(b"".join((header, extension, body))))
        if not datagrams:
            return
        protocol = pair.protocol
        try:
            if type(protocol) is StunProtocol:
                self._writer_for(protocol).send(datagrams, pair.remote_addr)
            else:
                for datagram in datagrams:
                    await protocol.send_data(datagram, pair.remote_addr)
        except ConnectionError:
            return
        self.packets_retransmitted += len(datagrams)

    # -- RTCP ---------------------------------------------------------------------------------

    async def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> None:
        self.rtcp_received += 1
        self.last_rtcp = time.monotonic()
        if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
            for report in packet.reports:
                if report.ssrc != self._ssrc_media:
                    continue
                self._send_mid = False  # the receiver knows our SSRC now
                self.fraction_lost = report.fraction_lost / 256
                self.packets_lost = report.packets_lost
                self.jitter = report.jitter
                if report.lsr and report.lsr == self._lsr and report.dlsr:
                    rtt = time.time() - self._lsr_time - report.dlsr / 65536
                    self.rtt = rtt if self.rtt is None else (
                        _RTT_ALPHA * self.rtt + (1 - _RTT_ALPHA) * rtt
                    )
        elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            self.nacks += 1
            await self._retransmit_packets(packet.lost)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            if packet.fmt == RTCP_PSFB_PLI:
                self.plis += 1
                self._on_keyframe_request("pli")
            else:
                self.firs += 1
                self._on_keyframe_request("fir")

    async def _run_rtcp(self) -> None:
        """Sender reports for frames sent through ``send_frame``'s awaited path; frames sent
        directly carry theirs inline (``send_now``), and then this task only checks rarely."""
        while True:
            await asyncio.sleep(_REPORT_CHECK if self._fast is not None else 0.5 + random.random())
            if not self.packets_sent or time.monotonic() < self._next_report:
                continue
            elapsed = time.monotonic() - self._last_send
            data = self._report(ntp_now(), self._last_ts + int(elapsed * 90_000))
            try:
                await aiortc.send_rtcp(self.transport, data)
            except ConnectionError:
                return

    def _report_inline(self, timestamp: int, writer: DatagramWriter,
                       addr: tuple[str, int]) -> None:
        srtp = aiortc.tx_srtp(self.transport)
        if srtp is not None:
            writer.send([srtp.protect_rtcp(self._report(ntp_now(), timestamp))], addr)

    def _report(self, ntp: int, rtp_timestamp: int) -> bytes:
        """A sender report (and the CNAME) as of ``ntp``; schedules the next one."""
        if self._cname and not self._sdes:
            self._sdes = sdes_packet(self._ssrc_media, self._cname)
        self._lsr = (ntp >> 16) & 0xFFFFFFFF
        self._lsr_time = time.time()
        self._next_report = time.monotonic() + 0.5 + random.random()
        return sender_report(self._ssrc_media, ntp, rtp_timestamp, self.packets_sent,
                             self.octets_sent) + self._sdes

    async def getStats(self) -> RTCStatsReport:
        transport_id, transport_stats = aiortc.transport_stats(self.transport)
        report = RTCStatsReport()
        report.add(
            RTCOutboundRtpStreamStats(
                timestamp=datetime.datetime.now(datetime.UTC),
                type="outbound-rtp",
                id=f"outbound-rtp_{id(self)}",
                ssrc=self._ssrc_media,
                kind="video",
                transportId=transport_id,
                packetsSent=self.packets_sent,
                bytesSent=self.octets_sent,
                trackId=str(id(self)),
            )
        )
        report.update(transport_stats)
        return report

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
