"""What the facilities store holds, as values: facilities, floors, rooms, devices, alerts,
their timeline events and the outbox to CAD; the alert levels and the rules every caller
shares."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from rtcc.db import Row
from rtcc.errors import RtccError

LEVELS = ("medical", "lockdown", "active_threat", "fire", "weather", "other")
SHARING = ("always", "alert")
"""``always``: the RTCC sees the profile at any time; ``alert``: only while an alert is open."""
ACTIVE_STATES = ("triggered", "acknowledged", "dispatched")
CHECKIN_ANSWERS = ("safe", "injured", "need_help")
PROFILE_LISTS = ("buildings", "entrances", "staging_areas", "contacts", "sops", "hazards")


class FacilityError(RtccError):
    """A refused facility operation; ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


@dataclass(frozen=True, slots=True)
class Facility:
    id: str
    owner_id: str
    site_id: str
    name: str
    kind: str
    address: str
    lat: float | None
    lon: float | None
    sharing: str
    profile: dict[str, Any]
    reviewed_at: float
    created: float
    updated: float

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "owner_id": self.owner_id, "site_id": self.site_id,
                "name": self.name, "kind": self.kind, "address": self.address,
                "lat": self.lat, "lon": self.lon, "sharing": self.sharing,
                **{k: self.profile.get(k, []) for k in PROFILE_LISTS},
                "reviewed_at": self.reviewed_at, "review_due": self.reviewed_at + 365 * 86400,
                "updated": self.updated}


@dataclass(frozen=True, slots=True)
class Floor:
    id: str
    facility_id: str
    building: str
    name: str
    level: int
    has_plan: bool
    plan_width: int
    plan_height: int

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "building": self.building, "name": self.name,
                "level": self.level, "has_plan": self.has_plan,
                "plan_width": self.plan_width, "plan_height": self.plan_height}


@dataclass(frozen=True, slots=True)
class Room:
    id: str
    floor_id: str
    name: str
    number: str
    x: float | None
    y: float | None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "floor_id": self.floor_id, "name": self.name,
                "number": self.number, "x": self.x, "y": self.y}


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    facility_id: str
    label: str
    room_id: str
    created: float
    revoked_at: float | None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "room_id": self.room_id,
                "created": self.created, "revoked_at": self.revoked_at}


@dataclass(frozen=True, slots=True)
class Alert:
    id: str
    facility_id: str
    device_id: str
    client_id: str
    level: str
    drill: bool
    silent: bool
    room_id: str
    lat: float | None
    lon: float | None
    accuracy_m: float | None
    state: str
    created: float
    updated: float
    incident_id: str
    opened: bool

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "facility_id": self.facility_id, "device_id": self.device_id,
                "client_id": self.client_id, "level": self.level, "drill": self.drill,
                "silent": self.silent, "room_id": self.room_id, "lat": self.lat,
                "lon": self.lon, "accuracy_m": self.accuracy_m, "state": self.state,
                "active": self.active, "created": self.created, "updated": self.updated,
                "incident_id": self.incident_id}


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    alert_id: str
    at: float
    step: str
    actor: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at, "step": self.step, "actor": self.actor,
                "details": self.details}


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    alert_id: str
    endpoint: str
    key: str
    body: str
    attempts: int
    """Attempts so far, this one included."""


def _facility(row: Row) -> Facility:
    return Facility(id=row["id"], owner_id=row["owner_id"], site_id=row["site_id"],
                    name=row["name"], kind=row["kind"], address=row["address"],
                    lat=row["lat"], lon=row["lon"], sharing=row["sharing"],
                    profile=json.loads(row["profile"]), reviewed_at=float(row["reviewed_at"]),
                    created=float(row["created"]), updated=float(row["updated"]))


def _floor(row: Row) -> Floor:
    return Floor(id=row["id"], facility_id=row["facility_id"], building=row["building"],
                 name=row["name"], level=int(row["level"]), has_plan=bool(row["has_plan"]),
                 plan_width=int(row["plan_width"]), plan_height=int(row["plan_height"]))


def _room(row: Row) -> Room:
    return Room(id=row["id"], floor_id=row["floor_id"], name=row["name"],
                number=row["number"], x=row["x"], y=row["y"])


def _device(row: Row) -> Device:
    return Device(id=row["id"], facility_id=row["facility_id"], label=row["label"],
                  room_id=row["room_id"], created=float(row["created"]),
                  revoked_at=row["revoked_at"])


def _alert(row: Row) -> Alert:
    return Alert(id=row["id"], facility_id=row["facility_id"], device_id=row["device_id"],
                 client_id=row["client_id"], level=row["level"], drill=bool(row["drill"]),
                 silent=bool(row["silent"]), room_id=row["room_id"], lat=row["lat"],
                 lon=row["lon"], accuracy_m=row["accuracy_m"], state=row["state"],
                 created=float(row["created"]), updated=float(row["updated"]),
                 incident_id=row["incident_id"], opened=bool(row["opened"]))
