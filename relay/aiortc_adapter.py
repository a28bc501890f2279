"""The only place the relay touches aiortc's and pylibsrtp's private internals.

aiortc negotiates, runs ICE and DTLS and routes the viewer's RTCP; the relay's send engine
(``relay.engine`` and the pure modules it uses) writes the media itself, fed by the thin adapter
``relay.sender``. To do that the adapter must reach a few things aiortc keeps private: the
transceiver's sender slot, the DTLS transport's SRTP session and nominated ICE pair, its RTP
router, and pylibsrtp's cffi binding. Each access is one small function here, with why it is
needed. ``pyproject.toml`` pins aiortc to the minor version these were checked against, and
``tests/relay/test_aiortc_internals.py`` fails, naming the internal, if an upgrade moves one
(``missing_internals``).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import ipaddress
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

import ifaddr
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import CandidatePair, Connection
from aiortc import RTCIceGatherer, RTCIceTransport, RTCRtpSender, RTCRtpTransceiver, rtp
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpSendParameters
from aiortc.rtp import (
    AnyRtcpPacket,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
)

from relay.srtp import LibSrtp, SrtpSession

log = logging.getLogger(__name__)


# -- pylibsrtp ------------------------------------------------------------------------------


@functools.cache
def libsrtp() -> LibSrtp | None:
    """pylibsrtp's libsrtp functions and session contexts, or None when this pylibsrtp is laid
    out otherwise (then every packet goes through ``Session.protect``, one copy more)."""
    try:
        # Private module: the libsrtp functions themselves, to protect packets in place.
        module = importlib.import_module("pylibsrtp._binding")
        return LibSrtp(module.ffi, module.lib, srtp_context)
    except (ImportError, AttributeError):
        log.warning("pylibsrtp's libsrtp binding is not reachable; SRTP costs a copy per packet")
        return None


def srtp_context(session: SrtpSession) -> Any:
    """The libsrtp context of a pylibsrtp session (its ``srtp_t``), or None."""
    # Private attribute: the context ``srtp_protect`` needs for in-place protection.
    ctx = getattr(session, "_srtp", None)
    return ctx[0] if ctx is not None else None


# -- negotiation ----------------------------------------------------------------------------


def install_sender(transceiver: RTCRtpTransceiver, sender: RTCRtpSender) -> None:
    """Make ``sender`` the transceiver's sender, keeping the SSRCs aiortc chose (and will put
    in the answer). Must run before the remote offer is applied."""
    original = transceiver.sender
    # Private attributes: the SSRCs and stream id aiortc already advertised for this sender.
    sender._ssrc = original._ssrc  # noqa: SLF001 -- keeps the SSRCs aiortc advertised
    sender._rtx_ssrc = original._rtx_ssrc  # noqa: SLF001 -- keeps the SSRCs aiortc advertised
    sender._stream_id = original._stream_id  # noqa: SLF001 -- keeps the stream id aiortc advertised
    # Name-mangled slot: aiortc has no public way to give a transceiver another sender.
    setattr(transceiver, "_RTCRtpTransceiver__sender", sender)  # noqa: B010
    if transceiver.sender is not sender:
        raise RuntimeError("cannot install the passthrough sender in this aiortc version")


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    """The codecs negotiated for a transceiver, preferred first."""
    # Private attribute: aiortc exposes the negotiated codecs only to its own sender.
    codecs: list[RTCRtpCodecParameters] = list(getattr(transceiver, "_codecs", []))
    return codecs


def set_negotiated_codecs(transceiver: RTCRtpTransceiver,
                          codecs: list[RTCRtpCodecParameters]) -> None:
    """Replace what aiortc negotiated by ``codecs`` (a codec aiortc itself does not know, such as
    H.265, which the relay only forwards); the answer and the sender's parameters use them."""
    # Private attribute: aiortc builds its answer and its sender's parameters from it.
    transceiver._codecs = list(codecs)  # noqa: SLF001 -- see REQUIRED_INTERNALS


def sender_ssrcs(sender: RTCRtpSender) -> tuple[int, int]:
    """(media SSRC, RTX SSRC) of a sender."""
    # Private attributes: the SSRCs aiortc generated and signalled for this sender.
    return sender._ssrc, sender._rtx_ssrc  # noqa: SLF001 -- the SSRCs aiortc signalled


# -- ICE candidates -------------------------------------------------------------------------


def interface_addresses(names: Sequence[str]) -> list[str]:
    """The IP addresses ``names`` stand for: IP literals as written, interface names (``eth0``)
    as the interface's addresses now (IPv6 link-local ones left out, as aioice does)."""
    found: list[str] = []
    adapters = None
    for name in names:
        try:
            found.append(str(ipaddress.ip_address(name)))
            continue
        except ValueError:
            pass
        if adapters is None:
            adapters = ifaddr.get_adapters()
        matched = False
        for adapter in adapters:
            if name not in (adapter.name, adapter.nice_name):
                continue
            matched = True
            for ip in adapter.ips:
                if isinstance(ip.ip, str):
                    found.append(ip.ip)
                elif ip.ip[2] == 0:  # a scope id marks a link-local address
                    found.append(ip.ip[0])
        if not matched:
            log.warning("relay.host_addresses names %r, which is neither an IP address nor an "
                        "interface of this machine; no candidate is gathered on it", name)
    return list(dict.fromkeys(found))


def restrict_host_candidates(dtls: RTCDtlsTransport, host_addresses: Sequence[str],
                             public_addresses: Sequence[str]) -> None:
    """Gather this transport's host candidates on ``host_addresses`` only (IPs or interface
    names; empty: aioice's choice, every interface but loopback) and offer each one also under
    every address of ``public_addresses`` (a 1:1 NAT forwarding the same port). Must run before
    the local description is set (that is when aiortc gathers)."""
    if not host_addresses and not public_addresses:
        return
    # Private attributes: aioice picks its host addresses itself, from every interface, in
    # ``gather_candidates``; it has no parameter for them. This replaces that method on this one
    # connection with the same steps over the configured addresses.
    connection: Connection = dtls.transport.iceGatherer._connection  # noqa: SLF001 -- aioice has no host address parameter
    gather_all = connection.gather_candidates

    async def gather_candidates() -> None:
        if connection._local_candidates_start:  # noqa: SLF001 -- same guard as aioice's
            return
        if not host_addresses:
            await gather_all()
        else:
            connection._local_candidates_start = True  # noqa: SLF001 -- same steps as aioice's
            addresses = interface_addresses(host_addresses)
            results = await asyncio.gather(*(
                connection.get_component_candidates(component=component, addresses=addresses)
                for component in connection._components  # noqa: SLF001 -- same steps as aioice's
            ))
            for candidates in results:
                connection._local_candidates += candidates  # noqa: SLF001 -- same steps as aioice's
        mapped = [
            Candidate(
                foundation=candidate_foundation("srflx", "udp", public),
                component=candidate.component, transport="udp",
                priority=candidate_priority(candidate.component, "srflx"),
                host=public, port=candidate.port, type="srflx",
                related_address=candidate.host, related_port=candidate.port,
            )
            for candidate in connection.local_candidates if candidate.type == "host"
            for public in public_addresses
            if ipaddress.ip_address(public).version == ipaddress.ip_address(candidate.host).version
        ]
        connection._local_candidates += mapped  # noqa: SLF001 -- same steps as aioice's
        connection._local_candidates_end = True  # noqa: SLF001 -- same steps as aioice's

    # Replaces a method of one connection instance: the same gathering over chosen addresses.
    connection.gather_candidates = gather_candidates  # type: ignore[method-assign]


# -- the DTLS transport ---------------------------------------------------------------------


def dtls_connected(dtls: RTCDtlsTransport) -> bool:
    # Private attribute: the state without the public property's event machinery.
    return dtls._state is DtlsState.CONNECTED  # noqa: SLF001 -- the state without the event machinery


def tx_srtp(dtls: RTCDtlsTransport) -> SrtpSession | None:
    """The outbound SRTP session of a connected DTLS transport, else None."""
    # Private attributes: the keys DTLS negotiated, to protect packets the relay writes itself.
    if dtls._state is not DtlsState.CONNECTED:  # noqa: SLF001 -- the state without the event machinery
        return None
    session: SrtpSession | None = dtls._tx_srtp  # noqa: SLF001 -- the keys DTLS negotiated
    return session


def nominated_pair(dtls: RTCDtlsTransport) -> CandidatePair | None:
    """The ICE candidate pair of component 1 the media goes over, once nominated."""
    # Private attributes: the relay sends on the pair's socket directly (batched, GSO).
    pair: CandidatePair | None = dtls.transport._connection._nominated.get(1)  # noqa: SLF001 -- the relay sends on the pair's socket
    return pair


def register_sender(dtls: RTCDtlsTransport, sender: RTCRtpSender,
                    parameters: RTCRtpSendParameters) -> None:
    """Route the viewer's RTCP for this sender's SSRCs to it (aiortc's sender does this in its
    own ``send``, which the relay replaces)."""
    # Private methods and attribute: the RTCP routing table of the transport.
    dtls._register_rtp_sender(sender, parameters)  # noqa: SLF001 -- aiortc's RTCP routing table
    route_rtcp_fast(dtls._rtp_router)  # noqa: SLF001 -- aiortc's RTCP routing table


def unregister_sender(dtls: RTCDtlsTransport, sender: RTCRtpSender) -> None:
    # Private method: the counterpart of register_sender.
    dtls._unregister_rtp_sender(sender)  # noqa: SLF001 -- aiortc's RTCP routing table


async def send_rtcp(dtls: RTCDtlsTransport, data: bytes) -> None:
    """Protect and send RTCP (or RTP) through aiortc's own path."""
    # Private method: aiortc's only way to send a packet on the transport.
    await dtls._send_rtp(data)  # noqa: SLF001 -- aiortc's only send path


def transport_stats(dtls: RTCDtlsTransport) -> tuple[str, Any]:
    """(stats id, stats report entries) of the transport, for ``getStats``."""
    # Private attributes: aiortc builds its transport stats only for its own senders.
    return dtls._stats_id, dtls._get_stats()  # noqa: SLF001 -- aiortc builds these stats only for its own senders


def route_rtcp_fast(router: RtpRouter) -> None:
    """Give ``router`` a ``route_rtcp`` that decides as aiortc's does, without the per-call
    ``typing`` work aiortc's does (it defines an annotated nested function on every call: about
    a hundred microseconds per report). The router's tables are read at each call (they change
    as streams come and go)."""

    def route_rtcp(packet: AnyRtcpPacket) -> set[Any]:
        recipients: set[Any] = set()
        ssrc_table = router.ssrc_table
        senders = router.senders
        if isinstance(packet, RtcpSrPacket):
            recipient: Any = ssrc_table.get(packet.ssrc)
            if recipient is not None:
                recipients.add(recipient)
        elif isinstance(packet, RtcpByePacket):
            for source in packet.sources:
                recipient = ssrc_table.get(source)
                if recipient is not None:
                    recipients.add(recipient)
        if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
            for report in packet.reports:
                recipient = senders.get(report.ssrc)
                if recipient is not None:
                    recipients.add(recipient)
        elif isinstance(packet, RtcpPsfbPacket | RtcpRtpfbPacket):
            recipient = senders.get(packet.media_ssrc)
            if recipient is not None:
                recipients.add(recipient)
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt == rtp.RTCP_PSFB_APP:
                try:
                    for ssrc in rtp.unpack_remb_fci(packet.fci)[1]:
                        recipient = senders.get(ssrc)
                        if recipient is not None:
                            recipients.add(recipient)
                except ValueError:
                    pass
        return recipients

    # Replaces a method of one router instance: same decisions, without the per-call cost.
    router.route_rtcp = route_rtcp  # type: ignore[method-assign]


# -- what an aiortc upgrade must keep -------------------------------------------------------


def _has(owner: object, name: str) -> Callable[[], bool]:
    return lambda: hasattr(owner, name)


def _init_sets(cls: type, name: str) -> Callable[[], bool]:
    """True if ``cls.__init__`` assigns ``self.<name>`` (instance attributes of aiortc objects
    exist only once built, which needs a running connection)."""
    pattern = re.compile(rf"self\.{re.escape(name)}\s*(:[^=\n]*)?=[^=]")
    return lambda: pattern.search(inspect.getsource(cls.__init__)) is not None  # type: ignore[misc]


def _binding_ok() -> bool:
    try:
        module = importlib.import_module("pylibsrtp._binding")
    except ImportError:
        return False
    return hasattr(module, "ffi") and hasattr(module.lib, "srtp_protect")


def _session_ok() -> bool:
    from pylibsrtp import Session

    return _init_sets(Session, "_srtp")()


def _transceiver_slot_ok() -> bool:
    return _init_sets(RTCRtpTransceiver, "__sender")()


REQUIRED_INTERNALS: dict[str, Callable[[], bool]] = {
    "RTCRtpTransceiver.__sender (name-mangled sender slot)": _transceiver_slot_ok,
    "RTCRtpTransceiver._codecs": _init_sets(RTCRtpTransceiver, "_codecs"),
    "RTCRtpSender._ssrc": _init_sets(RTCRtpSender, "_ssrc"),
    "RTCRtpSender._rtx_ssrc": _init_sets(RTCRtpSender, "_rtx_ssrc"),
    "RTCRtpSender._stream_id": _init_sets(RTCRtpSender, "_stream_id"),
    "RTCRtpSender._handle_rtcp_packet (where the router hands a sender its RTCP)": _has(
        RTCRtpSender, "_handle_rtcp_packet"
    ),
    "RTCDtlsTransport._state": _init_sets(RTCDtlsTransport, "_state"),
    "RTCDtlsTransport._tx_srtp": _init_sets(RTCDtlsTransport, "_tx_srtp"),
    "RTCDtlsTransport._rtp_router": _init_sets(RTCDtlsTransport, "_rtp_router"),
    "RTCDtlsTransport._stats_id": _init_sets(RTCDtlsTransport, "_stats_id"),
    "RTCDtlsTransport._register_rtp_sender": _has(RTCDtlsTransport, "_register_rtp_sender"),
    "RTCDtlsTransport._unregister_rtp_sender": _has(RTCDtlsTransport, "_unregister_rtp_sender"),
    "RTCDtlsTransport._send_rtp": _has(RTCDtlsTransport, "_send_rtp"),
    "RTCDtlsTransport._get_stats": _has(RTCDtlsTransport, "_get_stats"),
    "RTCIceTransport._connection": lambda: _init_sets(RTCIceTransport, "_connection")(),
    "aioice Connection._nominated": lambda: _init_sets(Connection, "_nominated")(),
    "aioice Connection._local_candidates / _start / _end / _components (host addresses)": (
        lambda: all(_init_sets(Connection, name)() for name in (
            "_local_candidates", "_local_candidates_start", "_local_candidates_end",
            "_components"))
        and hasattr(Connection, "get_component_candidates")
    ),
    "RTCIceGatherer._connection": lambda: _init_sets(RTCIceGatherer, "_connection")(),
    "RtpRouter.route_rtcp / ssrc_table / senders": lambda: (
        hasattr(RtpRouter, "route_rtcp")
        and _init_sets(RtpRouter, "ssrc_table")()
        and _init_sets(RtpRouter, "senders")()
    ),
    "pylibsrtp._binding (ffi, lib.srtp_protect)": _binding_ok,
    "pylibsrtp.Session._srtp": _session_ok,
}
"""Every private internal this module uses, with a check that it is still there."""


def missing_internals() -> list[str]:
    """The internals an upgrade of aiortc or pylibsrtp moved (empty when all are there)."""
    missing = []
    for name, check in REQUIRED_INTERNALS.items():
        try:
            present = check()
        except Exception:  # noqa: BLE001 -- a check that cannot even run means the layout changed
            present = False
        if not present:
            missing.append(name)
    return missing
