"""The thin aiortc side of one viewer's sending: aiortc's sender slot, filled by the relay's engine.

aiortc negotiates the session, runs ICE and DTLS, and routes the viewer's RTCP to the sender of
the transceiver. aiortc's own ``RTCRtpSender`` pulls frames from a track, packetizes them again
for every viewer, builds an ``RtpPacket`` object per packet, awaits four coroutines per datagram,
keeps 128 packets of history (half a second of 2 Mbit/s video) and ignores PLI/FIR when it has no
encoder. ``PassthroughSender`` takes its slot (``relay.negotiation`` installs it before
the offer is applied) and does nothing with media itself: once DTLS is up it hands the
``relay.engine.RtpSendEngine`` the negotiated RTP parameters, and, as the engine's
``MediaPath``, the DTLS transport's SRTP session and the nominated ICE pair's socket and address;
it forwards the viewer's receiver reports, NACKs and keyframe requests to the engine. Every
private aiortc access goes through ``relay.aiortc_adapter``.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable

from aioice.ice import StunProtocol
from aiortc import RTCRtpSender
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from aiortc.rtp import (
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
)
from aiortc.stats import RTCOutboundRtpStreamStats, RTCStatsReport

from relay import aiortc_adapter as aiortc
from relay.engine import SCRATCH_BYTES, RtpSendEngine
from relay.history import DEFAULT_SLOTS
from relay.path import Route, RtpParameters
from relay.rtp_header import ABS_SEND_TIME_URI, MID_URI
from relay.srtp import ScratchBuffer, SrtpSession

log = logging.getLogger(__name__)


def new_scratch_buffer() -> ScratchBuffer:
    """A send buffer for the engines of one application, with libsrtp's functions."""
    return ScratchBuffer(SCRATCH_BYTES, aiortc.libsrtp())


def rtp_parameters(parameters: RTCRtpSendParameters, ssrc: int, rtx_ssrc: int,
                   ) -> RtpParameters | None:
    """The engine's parameters from aiortc's, None when the codec is neither H.264 nor H.265."""
    codec = parameters.codecs[0]
    if codec.mimeType.lower() not in ("video/h264", "video/h265") or codec.payloadType is None:
        return None
    rtx_pt = None
    for candidate in parameters.codecs:
        if (
            candidate.mimeType.lower() == "video/rtx"
            and candidate.parameters.get("apt") == codec.payloadType
        ):
            rtx_pt = candidate.payloadType
            break
    mid_id = abs_id = 0
    for extension in parameters.headerExtensions:
        if extension.uri == MID_URI:
            mid_id = extension.id
        elif extension.uri == ABS_SEND_TIME_URI:
            abs_id = extension.id
    return RtpParameters(
        payload_type=codec.payloadType,
        ssrc=ssrc,
        rtx_payload_type=rtx_pt,
        rtx_ssrc=rtx_ssrc,
        mid=(parameters.muxId or "").encode()[:16],
        mid_extension_id=mid_id,
        abs_send_time_extension_id=abs_id,
        cname=(parameters.rtcp.cname or "").encode(),
    )


class PassthroughSender(RTCRtpSender):
    """aiortc's sender of a send-only video transceiver, replaced by the relay before the offer
    is applied; ``engine`` sends the media."""

    def __init__(
        self,
        transport: RTCDtlsTransport,
        name: str,
        on_keyframe_request: Callable[[str], None],
        history_slots: int = DEFAULT_SLOTS,
        gso: bool = True,
        scratch: ScratchBuffer | None = None,
        compiled: bool = True,
    ) -> None:
        super().__init__("video", transport)
        self.name = name
        self.engine = RtpSendEngine(self, name, on_keyframe_request,
                                    scratch or new_scratch_buffer(),
                                    history_slots=history_slots, gso=gso,
                                    compiled=compiled)
        self._stopped = False
        self._registered = False

    # -- negotiation (called by RTCPeerConnection once DTLS is up) -----------------------------

    async def send(self, parameters: RTCRtpSendParameters) -> None:
        if self.engine.negotiated.is_set() or self._stopped:
            return
        ssrc, rtx_ssrc = aiortc.sender_ssrcs(self)
        chosen = rtp_parameters(parameters, ssrc, rtx_ssrc)
        if chosen is None:
            log.warning("viewer %s: negotiated %s, not H.264 or H.265; nothing will be sent",
                        self.name, parameters.codecs[0].mimeType)
            return
        aiortc.register_sender(self.transport, self, parameters)
        self._registered = True
        self.engine.start(chosen)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._registered:
            aiortc.unregister_sender(self.transport, self)
        await self.engine.stop()

    # -- the engine's MediaPath ---------------------------------------------------------------

    def connected(self) -> bool:
        return aiortc.dtls_connected(self.transport)

    def srtp(self) -> SrtpSession | None:
        return aiortc.tx_srtp(self.transport)

    def route(self) -> Route:
        srtp = aiortc.tx_srtp(self.transport)
        if srtp is None:
            raise ConnectionError("DTLS transport is not connected")
        pair = aiortc.nominated_pair(self.transport)
        if pair is None:
            raise ConnectionError("no ICE candidate pair is nominated")
        protocol = pair.protocol
        # aioice's plain UDP protocol: its socket is the viewer's path (no TURN relay)
        transport = protocol.transport if type(protocol) is StunProtocol else None
        return Route(srtp, transport, pair.remote_addr, protocol.send_data)

    async def send_rtcp(self, data: bytes) -> None:
        await aiortc.send_rtcp(self.transport, data)

    # -- RTCP from the viewer -----------------------------------------------------------------

    # Private hook: aiortc's RTP router hands each RTCP packet for this sender's SSRCs here
    # (listed in relay.aiortc_adapter.REQUIRED_INTERNALS).
    async def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> None:
        engine = self.engine
        engine.rtcp_arrived()
        if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
            engine.reception_reports(packet.reports)
        elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            await engine.nack(packet.lost)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_PLI:
            engine.picture_loss()
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_FIR:
            engine.full_intra_request()

    async def getStats(self) -> RTCStatsReport:
        transport_id, transport_stats = aiortc.transport_stats(self.transport)
        report = RTCStatsReport()
        report.add(
            RTCOutboundRtpStreamStats(
                timestamp=datetime.datetime.now(datetime.UTC),
                type="outbound-rtp",
                id=f"outbound-rtp_{id(self)}",
                ssrc=self.engine.ssrc,
                kind="video",
                transportId=transport_id,
                packetsSent=self.engine.packets_sent,
                bytesSent=self.engine.octets_sent,
                trackId=str(id(self)),
            )
        )
        report.update(transport_stats)
        return report
