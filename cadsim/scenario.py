"""A CAD scenario in the demo city (downtown Springfield, Illinois): NENA EIDO JSON documents.

Each incident goes through new -> dispatched -> en route -> on scene -> closed, one EIDO per step,
always the whole incident as the CAD knows it then (an EIDO replaces the previous one for the same
``incidentTrackingIdentifier``; ``lastUpdateTimeStamp`` grows with every step). Locations rotate
through the PIDF-LO shapes a CAD sends in ``locationByValue``: a geodetic point, a circle, a
polygon and a civic address on a real downtown street.

The CAD's response times are in the EIDO the standard way: ``callComponent.callStartTimestamp``
(call received), the call component's ``lastUpdateTimeStamp`` (entered), one ``dispatchComponent``
per unit status change (dispatched, en route, on scene, cleared), each with its
``lastUpdateTimeStamp`` and a note naming the status (``notesComponent``).

With the same seed the same incidents, places, units and steps come out in the same order; only
the timestamps follow the clock.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

CAPITOL = (39.7983, -89.6544)
"""The Illinois State Capitol, the centre of the demo city."""

AGENCY = "police.springfield.example"
CAD_ELEMENT = "cad.springfield.example"
TRACKING_PREFIX = "urn:emergency:uid:incidentid:"


@dataclass(frozen=True, slots=True)
class Place:
    name: str
    house_number: str
    prefix: str
    street: str
    suffix: str
    lat: float
    lon: float

    @property
    def address(self) -> str:
        prefix = f"{self.prefix} " if self.prefix else ""
        return f"{self.house_number} {prefix}{self.street} {self.suffix}"


PLACES: tuple[Place, ...] = (
    Place("Illinois State Capitol", "401", "S", "2nd", "St", 39.7983, -89.6544),
    Place("Old State Capitol", "1", "", "Old State Capitol", "Plz", 39.8016, -89.6483),
    Place("Presidential Library", "112", "N", "6th", "St", 39.8030, -89.6470),
    Place("Lincoln Home", "413", "S", "8th", "St", 39.7973, -89.6448),
    Place("Amtrak station", "100", "N", "3rd", "St", 39.8025, -89.6541),
    Place("Governor's Mansion", "410", "E", "Jackson", "St", 39.7976, -89.6497),
    Place("Hoogland Center", "420", "S", "6th", "St", 39.7970, -89.6487),
    Place("County Building", "200", "S", "9th", "St", 39.7997, -89.6436),
    Place("Capitol Avenue", "300", "E", "Capitol", "Ave", 39.7990, -89.6500),
    Place("Monroe Street", "500", "E", "Monroe", "St", 39.8003, -89.6482),
    Place("Adams Street", "700", "E", "Adams", "St", 39.8010, -89.6455),
    Place("Washington Street", "200", "W", "Washington", "St", 39.8022, -89.6520),
)


@dataclass(frozen=True, slots=True)
class IncidentType:
    code: str
    text: str
    registry: str
    priority: int


INCIDENT_TYPES: tuple[IncidentType, ...] = (
    IncidentType("ROBB", "Robbery in progress", "Police.Robbery", 1),
    IncidentType("SHOTS", "Shots fired", "Police.ShotsFired", 1),
    IncidentType("BURG", "Burglary", "Police.Burglary", 2),
    IncidentType("MVA", "Traffic crash with injuries", "Police.TrafficCrash", 2),
    IncidentType("DIST", "Disturbance", "Police.Disturbance", 3),
    IncidentType("SUSP", "Suspicious person", "Police.Suspicious", 3),
    IncidentType("FIRE", "Structure fire", "Fire.Structure", 1),
)

# (CAD status code, status text, note written when a unit reaches it)
STEPS: tuple[tuple[str, str, str], ...] = (
    ("PEND", "Pending", "Call entered"),
    ("DISP", "Dispatched", "dispatched"),
    ("ENRT", "EnRoute", "en route"),
    ("ONSC", "OnScene", "on scene"),
    ("CLSD", "Closed", "cleared, incident closed"),
)
SHAPES = ("point", "circle", "polygon", "civic")


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def _pidf(inner: str, stamp: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<presence xmlns="urn:ietf:params:xml:ns:pidf"'
        ' xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10"'
        ' xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"'
        ' xmlns:gml="http://www.opengis.net/gml"'
        ' xmlns:gs="http://www.opengis.net/pidflo/1.0"'
        f' entity="pres:cad@{CAD_ELEMENT}">'
        '<dm:device id="incident-location"><gp:geopriv>'
        f"<gp:location-info>{inner}</gp:location-info>"
        "<gp:usage-rules/><gp:method>Manual</gp:method>"
        f"</gp:geopriv><dm:timestamp>{stamp}</dm:timestamp></dm:device></presence>"
    )


def _offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    return (lat + north_m / 111_320.0,
            lon + east_m / (111_320.0 * math.cos(math.radians(lat))))


def pidf_point(lat: float, lon: float, stamp: str) -> str:
    return _pidf('<gml:Point srsName="urn:ogc:def:crs:EPSG::4326">'
                 f"<gml:pos>{lat:.6f} {lon:.6f}</gml:pos></gml:Point>", stamp)


def pidf_circle(lat: float, lon: float, radius_m: float, stamp: str) -> str:
    return _pidf('<gs:Circle srsName="urn:ogc:def:crs:EPSG::4326">'
                 f"<gml:pos>{lat:.6f} {lon:.6f}</gml:pos>"
                 f'<gs:radius uom="urn:ogc:def:uom:EPSG::9001">{radius_m:.1f}</gs:radius>'
                 "</gs:Circle>", stamp)


def pidf_polygon(corners: list[tuple[float, float]], stamp: str) -> str:
    ring = [*corners, corners[0]]  # a GML linear ring repeats its first point
    pos_list = " ".join(f"{lat:.6f} {lon:.6f}" for lat, lon in ring)
    return _pidf('<gml:Polygon srsName="urn:ogc:def:crs:EPSG::4326"><gml:exterior>'
                 f"<gml:LinearRing><gml:posList>{pos_list}</gml:posList></gml:LinearRing>"
                 "</gml:exterior></gml:Polygon>", stamp)


def pidf_civic(place: Place, stamp: str) -> str:
    prefix = f"<ca:PRD>{escape(place.prefix)}</ca:PRD>" if place.prefix else ""
    return _pidf(
        '<ca:civicAddress xmlns:ca="urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr">'
        "<ca:country>US</ca:country><ca:A1>IL</ca:A1><ca:A2>Sangamon</ca:A2>"
        f"<ca:A3>Springfield</ca:A3>{prefix}"
        f"<ca:RD>{escape(place.street)}</ca:RD><ca:STS>{escape(place.suffix)}</ca:STS>"
        f"<ca:HNO>{escape(place.house_number)}</ca:HNO><ca:PC>62701</ca:PC>"
        f"<ca:LOC>{escape(place.name)}</ca:LOC></ca:civicAddress>", stamp)


@dataclass
class _Incident:
    number: int
    tracking_id: str
    kind: IncidentType
    place: Place
    shape: str
    unit: str
    call_received: datetime
    step: int = 0
    history: list[tuple[str, datetime]] = field(default_factory=list)

    @property
    def closed(self) -> bool:
        return self.step >= len(STEPS) - 1


class Scenario:
    """Produces the next EIDO of a deterministic CAD day with :meth:`next_eido`."""

    def __init__(self, seed: int = 1, *, max_open: int = 4,
                 clock: Callable[[], datetime] | None = None) -> None:
        self._rng = random.Random(seed)
        self._seed = seed
        self._max_open = max_open
        self._clock = clock or (lambda: datetime.now(UTC))
        self._open: list[_Incident] = []
        self._issued = 0
        self._last_stamp: datetime | None = None

    def _now(self) -> datetime:
        # Strictly increasing as written: an update never carries the stamp of the one before.
        now = self._clock()
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # stamps carry ms
        if self._last_stamp is not None and now <= self._last_stamp:
            now = self._last_stamp + timedelta(milliseconds=1)
        self._last_stamp = now
        return now

    def next_eido(self) -> dict[str, Any]:
        if not self._open or (len(self._open) < self._max_open and self._rng.random() < 0.4):
            incident = self._new_incident()
        else:
            incident = self._rng.choice(self._open)
            incident.step += 1
        stamp = self._now()
        incident.history.append((STEPS[incident.step][0], stamp))
        if incident.closed:
            self._open.remove(incident)
        return build_eido(incident, stamp)

    def _new_incident(self) -> _Incident:
        self._issued += 1
        number = self._issued
        now = self._now()
        incident = _Incident(
            number=number,
            tracking_id=f"{TRACKING_PREFIX}{self._seed:04x}{number:06d}:{CAD_ELEMENT}",
            kind=self._rng.choice(INCIDENT_TYPES),
            place=self._rng.choice(PLACES),
            shape=SHAPES[(number - 1) % len(SHAPES)],
            unit=f"{self._rng.randint(1, 4)}A{self._rng.randint(10, 39)}",
            call_received=now - timedelta(seconds=self._rng.randint(20, 90)),
        )
        self._open.append(incident)
        return incident


def _location(incident: _Incident, stamp: str) -> str:
    place = incident.place
    if incident.shape == "point":
        return pidf_point(place.lat, place.lon, stamp)
    if incident.shape == "circle":
        return pidf_circle(place.lat, place.lon, 25.0 + 5 * (incident.number % 5), stamp)
    if incident.shape == "polygon":
        half = 30.0
        corners = [_offset(place.lat, place.lon, n, e)
                   for n, e in ((half, -half), (half, half), (-half, half), (-half, -half))]
        return pidf_polygon(corners, stamp)
    return pidf_civic(place, stamp)


def build_eido(incident: _Incident, stamp: datetime) -> dict[str, Any]:
    """The whole incident as an EIDO (NENA-STA-021.1b JSON) at ``stamp``."""
    tid = incident.tracking_id
    updated = iso(stamp)
    agency_ref = {"$ref": AGENCY}
    code, status_text, _ = STEPS[incident.step]
    entered = incident.history[0][1]
    dispatch: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    for index, (step_code, at) in enumerate(incident.history[1:], start=1):
        note_text = next(n for c, _, n in STEPS if c == step_code)
        note_id = f"{tid}:note:{index}"
        notes.append({"$id": note_id, "lastUpdateTimeStamp": iso(at),
                      "updatedByAgencyReference": agency_ref,
                      "notesActionComments": f"Unit {incident.unit} {note_text}"})
        dispatch.append({"$id": f"{tid}:dispatch:{index}", "lastUpdateTimeStamp": iso(at),
                         "updatedByAgencyReference": agency_ref, "agencyReference": agency_ref,
                         "emergencyResourceReference": [{"$ref": f"unit:{incident.unit}"}],
                         "notesReference": [{"$ref": note_id}]})
    location_id = f"{tid}:location:1"
    place = incident.place
    location: dict[str, Any] = {
        "$id": location_id, "lastUpdateTimeStamp": iso(entered),
        "updatedByAgencyReference": agency_ref,
        "locationTypeDescriptionRegistryText": "Incident",
        "locationByValue": _location(incident, iso(entered)),
        "locationDescriptionText": f"{place.address}, Springfield, IL ({place.name})",
    }
    eido: dict[str, Any] = {
        "$id": tid,
        "incidentTrackingIdentifier": tid,
        "lastUpdateTimeStamp": updated,
        "updatedByAgencyReference": agency_ref,
        "eidoVersion": "1.0",
        "issuingElementIdentification": CAD_ELEMENT,
        "incidentComponent": [{
            "$id": f"{tid}:incident",
            "lastUpdateTimeStamp": updated,
            "updatedByAgencyReference": agency_ref,
            "incidentTrackingIdentifier": tid,
            "incidentTypeInternalCode": incident.kind.code,
            "incidentTypeInternalText": incident.kind.text,
            "incidentTypeCommonRegistryText": incident.kind.registry,
            "incidentStatusInternalText": [code],
            "incidentStatusCommonRegistryText": [status_text],
            "incidentCommonPriorityNumber": incident.kind.priority,
            "internalIncidentId": f"SPD-{incident.number:06d}",
            "locationReference": [{"$ref": location_id}],
        }],
        "callComponent": [{
            "$id": f"{tid}:call:1", "lastUpdateTimeStamp": iso(entered),
            "updatedByAgencyReference": agency_ref, "direction": "incoming",
            "standardPrimaryCallType": "emergency",
            "callStartTimestamp": iso(incident.call_received),
        }],
        "agencyComponent": [{
            "$id": AGENCY, "lastUpdateTimeStamp": iso(entered),
            "updatedByAgencyReference": agency_ref,
            "agencyRoleDescriptionRegistryText": ["Dispatching"], "agencyType": ["police"],
        }],
        "locationComponent": [location],
    }
    if dispatch:
        eido["dispatchComponent"] = dispatch
        eido["notesComponent"] = notes
    return eido


def tracking_id(eido: dict[str, Any]) -> str | None:
    """The incident's tracking id, from either place the drafts put it."""
    for value in (eido.get("incidentTrackingIdentifier"), eido.get("$id")):
        if isinstance(value, str) and value:
            return value
    components = eido.get("incidentComponent")
    if isinstance(components, list) and components and isinstance(components[0], dict):
        value = components[0].get("incidentTrackingIdentifier")
        if isinstance(value, str) and value:
            return value
    return None


def is_closed(eido: dict[str, Any]) -> bool:
    components = eido.get("incidentComponent")
    if not isinstance(components, list) or not components or not isinstance(components[0], dict):
        return False
    status = components[0].get("incidentStatusInternalText")
    return isinstance(status, list) and "CLSD" in status
