"""WS-Discovery (SOAP over UDP, 2005/04 as ONVIF uses it): Probe and ProbeMatches messages.

Pure functions shared by the agent's prober (``ingest.onvif.discovery``) and the simulator's
responder (``camsim.discovery_responder``). Incoming datagrams are parsed with
``ingest.onvif.xmlsafe`` (no DTD, no entities).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import unquote
from xml.sax.saxutils import escape

from lxml import etree

from ingest.onvif.xmlsafe import UnsafeXml, parse_untrusted

MULTICAST_GROUP = "239.255.255.250"
PORT = 3702
MAX_DATAGRAM = 65_507

SOAP_ENV = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
DN = "http://www.onvif.org/ver10/network/wsdl"
TDS = "http://www.onvif.org/ver10/device/wsdl"
PROBE_ACTION = f"{WSD}/Probe"
MATCHES_ACTION = f"{WSD}/ProbeMatches"
DISCOVERY_TO = "urn:schemas-xmlsoap-org:ws:2005:04:discovery"
ANONYMOUS = f"{WSA}/role/anonymous"
VIDEO_TRANSMITTER = "NetworkVideoTransmitter"


class DiscoveryMessageError(UnsafeXml):
    """A datagram that is not a usable WS-Discovery message."""


@dataclass(frozen=True, slots=True)
class Probe:
    message_id: str
    types: tuple[str, ...]
    """Local names of the probed types (``NetworkVideoTransmitter``); empty matches all."""


@dataclass(frozen=True, slots=True)
class ProbeMatch:
    endpoint: str
    """The device's stable endpoint reference (usually ``urn:uuid:...``)."""
    xaddrs: tuple[str, ...]
    types: tuple[str, ...]
    scopes: tuple[str, ...]

    @property
    def name(self) -> str:
        """The ``onvif://www.onvif.org/name/...`` scope, if the device announces one."""
        for scope in self.scopes:
            if scope.startswith("onvif://www.onvif.org/name/"):
                return unquote(scope.rsplit("/", 1)[-1])
        return ""


def new_message_id() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def build_probe(message_id: str, types: tuple[str, ...] = (VIDEO_TRANSMITTER,)) -> bytes:
    type_list = " ".join(f"dn:{name}" for name in types)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<s:Envelope xmlns:s="{SOAP_ENV}" xmlns:a="{WSA}" xmlns:d="{WSD}" xmlns:dn="{DN}">'
        f"<s:Header><a:Action>{PROBE_ACTION}</a:Action>"
        f"<a:MessageID>{escape(message_id)}</a:MessageID><a:To>{DISCOVERY_TO}</a:To></s:Header>"
        f"<s:Body><d:Probe><d:Types>{type_list}</d:Types></d:Probe></s:Body></s:Envelope>"
    ).encode()


def build_probe_matches(relates_to: str, matches: list[ProbeMatch]) -> bytes:
    items = "".join(
        "<d:ProbeMatch>"
        f"<a:EndpointReference><a:Address>{escape(m.endpoint)}</a:Address></a:EndpointReference>"
        f"<d:Types>{escape(' '.join(m.types))}</d:Types>"
        f"<d:Scopes>{escape(' '.join(m.scopes))}</d:Scopes>"
        f"<d:XAddrs>{escape(' '.join(m.xaddrs))}</d:XAddrs>"
        "<d:MetadataVersion>1</d:MetadataVersion></d:ProbeMatch>"
        for m in matches
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<s:Envelope xmlns:s="{SOAP_ENV}" xmlns:a="{WSA}" xmlns:d="{WSD}" xmlns:dn="{DN}" '
        f'xmlns:tds="{TDS}">'
        f"<s:Header><a:Action>{MATCHES_ACTION}</a:Action>"
        f"<a:MessageID>{new_message_id()}</a:MessageID>"
        f"<a:RelatesTo>{escape(relates_to)}</a:RelatesTo><a:To>{ANONYMOUS}</a:To></s:Header>"
        f"<s:Body><d:ProbeMatches>{items}</d:ProbeMatches></s:Body></s:Envelope>"
    ).encode()


def _header_text(root: etree._Element, name: str) -> str:
    found = root.find(f"{{{SOAP_ENV}}}Header/{{{WSA}}}{name}")
    return (found.text or "").strip() if found is not None else ""


def _local_names(value: str) -> tuple[str, ...]:
    return tuple(item.rsplit(":", 1)[-1] for item in value.split() if item)


def _parse(data: bytes, action: str) -> etree._Element:
    root = parse_untrusted(data, max_bytes=MAX_DATAGRAM, what="the discovery message")
    if _header_text(root, "Action") != action:
        raise DiscoveryMessageError(f"not a WS-Discovery {action.rsplit('/', 1)[-1]} message")
    return root


def parse_probe(data: bytes) -> Probe:
    root = _parse(data, PROBE_ACTION)
    probe = root.find(f"{{{SOAP_ENV}}}Body/{{{WSD}}}Probe")
    if probe is None:
        raise DiscoveryMessageError("the probe has no Probe element")
    types = _local_names(probe.findtext(f"{{{WSD}}}Types") or "")
    return Probe(_header_text(root, "MessageID"), types)


def parse_probe_matches(data: bytes) -> tuple[str, list[ProbeMatch]]:
    """(the MessageID it answers, the matches)."""
    root = _parse(data, MATCHES_ACTION)
    matches: list[ProbeMatch] = []
    for item in root.iterfind(f"{{{SOAP_ENV}}}Body/{{{WSD}}}ProbeMatches/{{{WSD}}}ProbeMatch"):
        endpoint = (item.findtext(f"{{{WSA}}}EndpointReference/{{{WSA}}}Address") or "").strip()
        xaddrs = tuple(
            addr for addr in (item.findtext(f"{{{WSD}}}XAddrs") or "").split()
            if addr.startswith(("http://", "https://"))
        )
        if not endpoint or not xaddrs:
            continue
        matches.append(ProbeMatch(
            endpoint=endpoint[:200],
            xaddrs=xaddrs[:4],
            types=_local_names(item.findtext(f"{{{WSD}}}Types") or "")[:16],
            scopes=tuple((item.findtext(f"{{{WSD}}}Scopes") or "").split())[:32],
        ))
    return _header_text(root, "RelatesTo"), matches
