"""OASIS CAP 1.2 messages: built as XML elements and validated against the shipped schema.

``CAP-v1.2.xsd`` (OASIS, see ``CAP-v1.2.NOTICE.txt``) is loaded once; every message is validated
before it is stored or sent, so nothing the server emits fails a receiver's schema check.
A targeted send is ``scope=Private`` with the recipients' ``addresses``; the CAD incident goes in
``incidents`` and in an ``eventCode``; an Update or Cancel ``references`` the messages it follows.
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Literal

import xmlschema

from rtcc.errors import RtccError

NS = "urn:oasis:names:tc:emergency:cap:1.2"
MsgType = Literal["Alert", "Update", "Cancel"]
Scope = Literal["Public", "Restricted", "Private"]

ET.register_namespace("", NS)


class CapInvalid(RtccError):
    """A message does not validate against the CAP 1.2 schema; it is not sent."""


@dataclass(frozen=True, slots=True)
class Area:
    description: str
    circle: tuple[float, float, float] | None = None
    """(lat, lon, radius in metres)."""
    polygon: tuple[tuple[float, float], ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"description": self.description,
                "circle": None if self.circle is None else list(self.circle),
                "polygon": [list(p) for p in self.polygon]}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Area:
        circle = value.get("circle")
        return cls(str(value.get("description", "")),
                   None if not circle else (float(circle[0]), float(circle[1]),
                                            float(circle[2])),
                   tuple((float(a), float(b)) for a, b in value.get("polygon") or ()))


@dataclass(frozen=True, slots=True)
class Reference:
    sender: str
    identifier: str
    sent: str

    def text(self) -> str:
        return f"{self.sender},{self.identifier},{self.sent}"


@dataclass(frozen=True, slots=True)
class Info:
    event: str
    category: str = "Security"
    response_type: str = "Shelter"
    urgency: str = "Immediate"
    severity: str = "Severe"
    certainty: str = "Observed"
    headline: str = ""
    description: str = ""
    instruction: str = ""
    expires: datetime | None = None
    sender_name: str = ""
    event_codes: tuple[tuple[str, str], ...] = ()
    parameters: tuple[tuple[str, str], ...] = ()
    web: str = ""
    areas: tuple[Area, ...] = ()


@dataclass(frozen=True, slots=True)
class Alert:
    identifier: str
    sender: str
    sent: datetime
    status: str
    msg_type: MsgType
    scope: Scope
    info: Info
    addresses: tuple[str, ...] = ()
    references: tuple[Reference, ...] = ()
    incidents: tuple[str, ...] = ()
    note: str = ""
    codes: tuple[str, ...] = field(default=())


def cap_time(moment: datetime) -> str:
    """CAP's dateTime: seconds, an explicit offset, never ``Z``."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def _list(values: Sequence[str]) -> str:
    """CAP's space-delimited list; values with spaces in double quotes."""
    return " ".join(f'"{v}"' if " " in v else v for v in values)


def _sub(parent: ET.Element, name: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, f"{{{NS}}}{name}")
    if text is not None:
        element.text = text
    return element


def _area(parent: ET.Element, area: Area) -> None:
    element = _sub(parent, "area")
    _sub(element, "areaDesc", area.description or "Area")
    if area.polygon:
        ring = list(area.polygon)
        if ring[0] != ring[-1]:
            ring.append(ring[0])
        _sub(element, "polygon", " ".join(f"{lat:.6f},{lon:.6f}" for lat, lon in ring))
    if area.circle is not None:
        lat, lon, radius_m = area.circle
        _sub(element, "circle", f"{lat:.6f},{lon:.6f} {radius_m / 1000:.3f}")


def to_element(alert: Alert) -> ET.Element:
    root = ET.Element(f"{{{NS}}}alert")
    _sub(root, "identifier", alert.identifier)
    _sub(root, "sender", alert.sender)
    _sub(root, "sent", cap_time(alert.sent))
    _sub(root, "status", alert.status)
    _sub(root, "msgType", alert.msg_type)
    _sub(root, "scope", alert.scope)
    if alert.addresses:
        _sub(root, "addresses", _list(alert.addresses))
    for code in alert.codes:
        _sub(root, "code", code)
    if alert.note:
        _sub(root, "note", alert.note)
    if alert.references:
        _sub(root, "references", " ".join(r.text() for r in alert.references))
    if alert.incidents:
        _sub(root, "incidents", _list(alert.incidents))
    info = alert.info
    element = _sub(root, "info")
    _sub(element, "language", "en-US")
    _sub(element, "category", info.category)
    _sub(element, "event", info.event)
    if info.response_type:
        _sub(element, "responseType", info.response_type)
    _sub(element, "urgency", info.urgency)
    _sub(element, "severity", info.severity)
    _sub(element, "certainty", info.certainty)
    for name, value in info.event_codes:
        event_code = _sub(element, "eventCode")
        _sub(event_code, "valueName", name)
        _sub(event_code, "value", value)
    if info.expires is not None:
        _sub(element, "expires", cap_time(info.expires))
    if info.sender_name:
        _sub(element, "senderName", info.sender_name)
    for tag, text in (("headline", info.headline), ("description", info.description),
                      ("instruction", info.instruction), ("web", info.web)):
        if text:
            _sub(element, tag, text)
    for name, value in info.parameters:
        parameter = _sub(element, "parameter")
        _sub(parameter, "valueName", name)
        _sub(parameter, "value", value)
    for area in info.areas:
        _area(element, area)
    return root


class CapSchema:
    """The CAP 1.2 schema, loaded on first use (blocking: call from a worker thread)."""

    def __init__(self) -> None:
        self._schema: xmlschema.XMLSchema | None = None
        self._lock = threading.Lock()

    def schema(self) -> xmlschema.XMLSchema:
        with self._lock:
            if self._schema is None:
                source = resources.files("notify").joinpath("CAP-v1.2.xsd").read_text("utf-8")
                self._schema = xmlschema.XMLSchema(source)
            return self._schema

    def check(self, document: str) -> None:
        """Raises CapInvalid naming the first problem."""
        errors = list(self.schema().iter_errors(document))
        if errors:
            first = errors[0]
            raise CapInvalid(f"the CAP message is not valid CAP 1.2 at {first.path}: "
                             f"{first.reason}")


SCHEMA = CapSchema()


def render(alert: Alert, schema: CapSchema = SCHEMA) -> str:
    """The message as an XML document, validated (blocking: call from a worker thread)."""
    document = ET.tostring(to_element(alert), encoding="unicode", xml_declaration=False)
    document = '<?xml version="1.0" encoding="UTF-8"?>\n' + document
    schema.check(document)
    return document
