"""The publication policy: which incidents the public sees, when, and how precisely placed.

An incident is published only when its type is listed as public and not as sensitive, once the
configured delay has passed, and only within the rolling window. Its location is never the
exact point: it is moved to a snap point of a square grid of ``grid_m`` metres, at least a
quarter of the grid side away from where it happened (an incident that happened near its
square's centre is moved to the square's corner instead), and a street address is shown only as
its hundred block. Times are published to the hour.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from rtcc.transparency_config import TransparencyConfig

M_PER_DEG_LAT = 111_320.0
COORD_DECIMALS = 6
Source = Literal["cad", "records"]


@dataclass(frozen=True, slots=True)
class SourceIncident:
    """An incident before publication (a CAD call or a reported crime): never served as is."""

    source: Source
    incident_id: str
    code: str
    occurred_at: datetime
    lat: float | None
    lon: float | None
    address: str | None = None


@dataclass(frozen=True, slots=True)
class PublishedIncident:
    """What the public sees of one incident. Field names are the open data's: stable."""

    id: str
    source: Source
    type_code: str
    type_label: str
    occurred_hour: str
    """UTC, ISO 8601, truncated to the hour."""
    lat: float | None
    lon: float | None
    block: str | None
    district: str | None = None


def is_public_type(code: str, config: TransparencyConfig) -> bool:
    key = code.strip().upper()
    return key not in set(config.redacted_types) and key in _public(config)


def _public(config: TransparencyConfig) -> dict[str, str]:
    return {k.strip().upper(): v for k, v in config.public_types.items()}


def snap(lat: float, lon: float, grid_m: float) -> tuple[float, float]:
    """The snap point of (lat, lon): its grid square's centre, or the square's north-east
    corner when the point lies within a quarter of the side from the centre."""
    cell_lat = grid_m / M_PER_DEG_LAT
    row = math.floor(lat / cell_lat)
    centre_lat = (row + 0.5) * cell_lat
    cell_lon = grid_m / (M_PER_DEG_LAT * max(math.cos(math.radians(centre_lat)), 0.01))
    col = math.floor(lon / cell_lon)
    centre_lon = (col + 0.5) * cell_lon
    if distance_m(lat, lon, centre_lat, centre_lon) < grid_m / 4:
        centre_lat, centre_lon = (row + 1) * cell_lat, (col + 1) * cell_lon
    return round(centre_lat, COORD_DECIMALS), round(centre_lon, COORD_DECIMALS)


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Equirectangular distance: exact enough within a city."""
    mean = math.radians((lat1 + lat2) / 2)
    dy = (lat1 - lat2) * M_PER_DEG_LAT
    dx = (lon1 - lon2) * M_PER_DEG_LAT * math.cos(mean)
    return math.hypot(dx, dy)


_HOUSE = re.compile(r"^\s*(\d+)[A-Za-z]?(?:-\d+)?\s+(.{2,120}?)\s*$")
_CROSSING = re.compile(r"^[^&]{2,60}(?:&| and | at | / )[^&]{2,60}$", re.IGNORECASE)


def hundred_block(address: str | None) -> str | None:
    """``413 S 8th St`` -> ``400 block of S 8th St``; an intersection as it is; anything else
    (a place name, a flat number) is not published."""
    if not address:
        return None
    text = address.split(",")[0].strip()
    house = _HOUSE.match(text)
    if house:
        return f"{int(house[1]) // 100 * 100} block of {house[2]}"
    if _CROSSING.match(text):
        return " ".join(text.split())
    return None


def public_id(source: str, incident_id: str) -> str:
    """A stable id that does not reveal the CAD's or the records system's own number."""
    return hashlib.sha256(f"{source}:{incident_id}".encode()).hexdigest()[:16]


def publish(incidents: list[SourceIncident], config: TransparencyConfig,
            now: datetime) -> list[PublishedIncident]:
    """The incidents the public may see now, newest first."""
    public = _public(config)
    redacted = set(config.redacted_types)
    latest = now - timedelta(hours=config.delay_hours)
    earliest = now - timedelta(days=config.window_days)
    out: list[PublishedIncident] = []
    for incident in incidents:
        code = incident.code.strip().upper()
        if code in redacted or code not in public:
            continue
        if not earliest <= incident.occurred_at <= latest:
            continue
        lat = lon = None
        if incident.lat is not None and incident.lon is not None:
            lat, lon = snap(incident.lat, incident.lon, config.grid_m)
        hour = incident.occurred_at.astimezone(now.tzinfo).replace(minute=0, second=0,
                                                                   microsecond=0)
        out.append(PublishedIncident(
            id=public_id(incident.source, incident.incident_id), source=incident.source,
            type_code=code, type_label=public[code], occurred_hour=hour.isoformat(),
            lat=lat, lon=lon,
            block=hundred_block(incident.address) if config.snap == "block" else None))
    out.sort(key=lambda p: (p.occurred_hour, p.id), reverse=True)
    return out
