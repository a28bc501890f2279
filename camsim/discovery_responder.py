"""WS-Discovery responder for the simulated ONVIF cameras.

Answers Probe messages for ``NetworkVideoTransmitter`` (or untyped probes) with one ProbeMatches
datagram listing every simulated device, sent back to the prober's address. It listens on a
unicast UDP port (tests probe it directly: multicast is not available everywhere) and, when a
multicast group is configured, also joins it on the multicast port (239.255.255.250:3702 is what
real cameras use).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from dataclasses import dataclass
from typing import cast
from urllib.parse import quote

from ingest.onvif import wsdiscovery
from ingest.onvif.wsdiscovery import ProbeMatch
from ingest.onvif.xmlsafe import UnsafeXml

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DiscoveryTarget:
    endpoint: str
    xaddr: str
    name: str


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, responder: DiscoveryResponder) -> None:
        self._responder = responder
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        reply = self._responder.answer(data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


class DiscoveryResponder:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, multicast_group: str = "",
                 multicast_port: int = wsdiscovery.PORT) -> None:
        self.host = host
        self.port = port
        self.multicast_group = multicast_group
        self.multicast_port = multicast_port
        self.targets: list[DiscoveryTarget] = []
        self.probes = 0
        self._transports: list[asyncio.DatagramTransport] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(self.host, self.port)
        )
        self._transports.append(transport)
        self.port = int(transport.get_extra_info("sockname")[1])
        if self.multicast_group:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("", self.multicast_port))
            membership = struct.pack("4s4s", socket.inet_aton(self.multicast_group),
                                     socket.inet_aton("0.0.0.0"))  # noqa: S104 (any interface)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
            multicast, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
            self._transports.append(multicast)

    def close(self) -> None:
        for transport in self._transports:
            transport.close()
        self._transports.clear()

    def answer(self, data: bytes) -> bytes | None:
        try:
            probe = wsdiscovery.parse_probe(data)
        except UnsafeXml:
            return None  # not a probe (or hostile): WS-Discovery says stay silent
        if probe.types and wsdiscovery.VIDEO_TRANSMITTER not in probe.types and (
            "Device" not in probe.types
        ):
            return None
        if not self.targets:
            return None
        self.probes += 1
        matches = [
            ProbeMatch(
                endpoint=target.endpoint,
                xaddrs=(target.xaddr,),
                types=("dn:NetworkVideoTransmitter", "tds:Device"),
                scopes=(
                    "onvif://www.onvif.org/type/video_encoder",
                    "onvif://www.onvif.org/Profile/Streaming",
                    f"onvif://www.onvif.org/name/{quote(target.name, safe='')}",
                ),
            )
            for target in self.targets
        ]
        return wsdiscovery.build_probe_matches(probe.message_id, matches)
