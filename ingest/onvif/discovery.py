"""Finding ONVIF cameras with WS-Discovery: send a Probe, collect ProbeMatches for a while.

The probe goes to the standard multicast group (239.255.255.250:3702) unless other targets are
given: networks where multicast does not pass (and tests) probe a known address directly.
Replies are parsed safely and only those answering this probe's MessageID are kept.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from dataclasses import dataclass

from ingest.onvif import wsdiscovery
from ingest.onvif.wsdiscovery import ProbeMatch
from ingest.onvif.xmlsafe import UnsafeXml

log = logging.getLogger(__name__)

MAX_DEVICES = 256


@dataclass(frozen=True, slots=True)
class DiscoveryTarget:
    host: str
    port: int = wsdiscovery.PORT

    @classmethod
    def parse(cls, text: str) -> DiscoveryTarget:
        """``HOST[:PORT]``; the default is the WS-Discovery port 3702."""
        host, sep, port = text.strip().rpartition(":")
        if not sep:
            host, port = text.strip(), str(wsdiscovery.PORT)
        try:
            ipaddress.ip_address(host)
            number = int(port)
        except ValueError:
            raise ValueError(f"discovery target {text!r} must be IPV4ADDRESS[:PORT]") from None
        if not 0 < number < 65536:
            raise ValueError(f"discovery target {text!r}: port out of range")
        return cls(host, number)

    @property
    def multicast(self) -> bool:
        return ipaddress.ip_address(self.host).is_multicast

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


MULTICAST = DiscoveryTarget(wsdiscovery.MULTICAST_GROUP, wsdiscovery.PORT)


class _Collector(asyncio.DatagramProtocol):
    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        self.found: dict[str, ProbeMatch] = {}
        self.ignored = 0

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        try:
            relates_to, matches = wsdiscovery.parse_probe_matches(data)
        except UnsafeXml as exc:
            self.ignored += 1
            log.debug("discovery: ignored a datagram from %s: %s", addr[0], exc)
            return
        if relates_to != self.message_id:
            self.ignored += 1
            return
        for match in matches:
            if len(self.found) < MAX_DEVICES:
                self.found.setdefault(match.endpoint, match)

    def error_received(self, exc: Exception) -> None:
        log.debug("discovery: socket error: %s", exc)


async def probe(
    targets: tuple[DiscoveryTarget, ...] = (MULTICAST,), *, wait: float = 2.0
) -> list[ProbeMatch]:
    """The devices that answered within ``wait`` seconds, one per endpoint reference."""
    loop = asyncio.get_running_loop()
    message_id = wsdiscovery.new_message_id()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    sock.setblocking(False)
    sock.bind(("0.0.0.0", 0))  # noqa: S104 (replies come from any camera on the LAN)
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _Collector(message_id), sock=sock
    )
    try:
        message = wsdiscovery.build_probe(message_id)
        for target in targets:
            try:
                transport.sendto(message, (target.host, target.port))
            except OSError as exc:
                log.warning("discovery: cannot send a probe to %s: %s", target, exc)
        await asyncio.sleep(wait)
    finally:
        transport.close()
    found = list(protocol.found.values())
    log.info("discovery: %d ONVIF devices answered (%s)", len(found),
             ", ".join(str(target) for target in targets))
    return found
