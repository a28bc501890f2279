"""What the send engine is given by the connection it sends over: the negotiated RTP parameters
and a ``MediaPath`` (SRTP keys, the ICE pair's socket and address). ``relay.sender`` provides
both from aiortc; the engine needs nothing else of it. ``DirectRoute`` is what the engine keeps
of a route once frames go straight to the socket, ``DirectResources`` what it is made of."""

from __future__ import annotations

from asyncio import DatagramTransport
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, Protocol

from relay.fastpath import BatchProtect, SendFrame
from relay.srtp import InPlaceProtector, ScratchBuffer, SrtpSession
from relay.udp import DatagramWriter


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


class DirectRoute(NamedTuple):
    """A route kept once frames went out directly: everything ``send_now`` needs, unpacked
    once per frame."""

    protect: Any
    """libsrtp's ``srtp_protect``."""
    context: Any
    """The session's libsrtp context."""
    cell: Any
    """The length cell ``srtp_protect`` reads and writes."""
    scratch: ScratchBuffer
    writer: DatagramWriter
    sendmsg: Callable[..., int]
    addr: tuple[str, int]
    tag_length: int
    compiled: BatchProtect | None
    """The compiled packet loop (``relay.fastpath``), None to use the Python one."""
    protect_address: int
    """The address of ``srtp_protect``, for the compiled loop."""
    context_address: int
    """The address of the session's libsrtp context, for the compiled loop."""
    send_frame: SendFrame | None
    """The compiled loop that also sends (``relay.fastpath``), None when it cannot be used."""
    fd: int
    """The writer's socket, for ``send_frame``."""
    packed_address: bytes
    """The viewer's address as a ``sockaddr``, for ``send_frame``."""
    srtp: SrtpSession
    """The session whose context ``context_address`` is: kept here so that the context is not
    freed while the route may still be used; a route is used only while it is the path's
    current session."""


class DirectResources:
    """What sending straight to the ICE pair's socket needs, kept while the route stays the
    same: a writer on the socket, an in-place protector for the SRTP session, and the session's
    SRTP tag length once a packet has shown it."""

    def __init__(self, scratch: ScratchBuffer, gso: bool,
                 compiled: BatchProtect | None = None,
                 send_frame: SendFrame | None = None) -> None:
        self._scratch = scratch
        self._gso = gso
        self._compiled = compiled
        self._send_frame = send_frame
        self._writer: DatagramWriter | None = None
        self._transport: DatagramTransport | None = None
        self._protector: InPlaceProtector | None = None
        self.tag_length: int | None = None

    def writer_for(self, transport: DatagramTransport) -> DatagramWriter:
        if transport.is_closing():
            raise ConnectionError("the viewer's socket is closed")
        writer = self._writer
        if writer is None or self._transport is not transport:
            if writer is not None:
                writer.close()
            writer = self._writer = DatagramWriter(transport, gso=self._gso)
            self._transport = transport
        return writer

    def protector_for(self, srtp: SrtpSession) -> InPlaceProtector:
        protector = self._protector
        if protector is None or protector.session is not srtp:
            protector = self._protector = InPlaceProtector(srtp, self._scratch)
            self.tag_length = None
        return protector

    def direct_route(self, writer: DatagramWriter, protector: InPlaceProtector,
                     addr: tuple[str, int]) -> DirectRoute | None:
        """The route to keep, or None while packets must go one by one (libsrtp is not
        reachable in place, or the tag length is not known yet)."""
        raw = protector.raw()
        if raw is None or self.tag_length is None:
            return None
        # the compiled loops call srtp_protect by address: only the libsrtp 2 function
        by_address = raw.protect_address != 0
        packed = (writer.packed_address(addr)
                  if self._send_frame is not None and by_address else None)
        return DirectRoute(raw.protect, raw.context, raw.cell, self._scratch, writer,
                           writer.sendmsg, addr, self.tag_length,
                           self._compiled if by_address else None,
                           raw.protect_address, raw.context_address,
                           self._send_frame if packed is not None else None,
                           writer.fileno(), packed or b"", raw.session)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._transport = None
