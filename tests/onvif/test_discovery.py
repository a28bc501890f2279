"""WS-Discovery: unicast probes to a known address (multicast may not pass everywhere),
multicast when the network allows it, and hostile datagrams ignored."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from camsim.onvif_runner import OnvifDeviceConfig, OnvifProfile
from ingest.onvif import discovery, wsdiscovery
from ingest.onvif.discovery import DiscoveryTarget
from tests.fixtures.onvif import BOMB, LOBBY, OnvifSimFactory

GATE = OnvifDeviceConfig(name="Back Gate", profiles=(OnvifProfile("main", "open"),))


async def test_unicast_probe_finds_every_simulated_device(
    onvif_sim_factory: OnvifSimFactory,
) -> None:
    sim = await onvif_sim_factory([LOBBY, GATE])
    found = await discovery.probe((DiscoveryTarget("127.0.0.1", sim.discovery_port),),
                                  wait=0.5)
    by_name = {match.name: match for match in found}
    assert set(by_name) == {"Lobby PTZ", "Back Gate"}
    assert by_name["Lobby PTZ"].xaddrs == (sim.xaddr(0),)
    assert by_name["Back Gate"].xaddrs == (sim.xaddr(1),)
    assert "NetworkVideoTransmitter" in by_name["Back Gate"].types
    assert by_name["Lobby PTZ"].endpoint.startswith("urn:uuid:")


def _multicast_port_free() -> int:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("", 0))
    port = int(probe.getsockname()[1])
    probe.close()
    return port


async def test_multicast_probe_on_a_private_port(onvif_sim_factory: OnvifSimFactory) -> None:
    port = _multicast_port_free()
    group = wsdiscovery.MULTICAST_GROUP
    check = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        check.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                         struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton("0.0.0.0")))
    except OSError as exc:
        pytest.skip(f"this host cannot join multicast group {group}: {exc}")
    finally:
        check.close()
    sim = await onvif_sim_factory([GATE], multicast_group=group, multicast_port=port)
    found = await discovery.probe((DiscoveryTarget(group, port),), wait=1.0)
    if not found:
        pytest.skip("multicast datagrams are not delivered on this host (unicast is tested)")
    assert [match.xaddrs for match in found] == [(sim.xaddr(0),)]


class _HostileResponder(asyncio.DatagramProtocol):
    """Answers every probe with an entity bomb, a reply to another probe, and junk."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        probe = wsdiscovery.parse_probe(data)
        match = wsdiscovery.ProbeMatch("urn:uuid:x", ("http://192.0.2.9/onvif/device_service",),
                                       ("NetworkVideoTransmitter",), ())
        self.transport.sendto(BOMB.encode(), addr)  # type: ignore[attr-defined]
        self.transport.sendto(  # type: ignore[attr-defined]
            wsdiscovery.build_probe_matches("urn:uuid:someone-else", [match]), addr)
        self.transport.sendto(b"\x00garbage", addr)  # type: ignore[attr-defined]
        good = wsdiscovery.ProbeMatch("urn:uuid:good", ("http://192.0.2.10/onvif/device_service",),
                                      ("NetworkVideoTransmitter",), ())
        self.transport.sendto(  # type: ignore[attr-defined]
            wsdiscovery.build_probe_matches(probe.message_id, [good]), addr)


async def test_hostile_datagrams_are_ignored() -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(_HostileResponder,
                                                       local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        found = await discovery.probe((DiscoveryTarget("127.0.0.1", port),), wait=0.5)
    finally:
        transport.close()
    assert [match.endpoint for match in found] == ["urn:uuid:good"]


def test_discovery_target_parsing() -> None:
    assert DiscoveryTarget.parse("192.0.2.5") == DiscoveryTarget("192.0.2.5", 3702)
    assert DiscoveryTarget.parse("239.255.255.250:3702").multicast
    with pytest.raises(ValueError, match="IPV4ADDRESS"):
        DiscoveryTarget.parse("camera.local:3702")
