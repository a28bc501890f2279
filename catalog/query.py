"""Query vocabulary shared by both stores: filters, index candidates, hits and results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from catalog.model import Camera, CameraStatus
from rtcc.config import CameraKind, SharingLevel

MAX_PAGE = 1000
"""Largest page a query may ask for."""


@dataclass(frozen=True, slots=True)
class Filters:
    """Restrictions on which cameras a query returns; an empty set means "any"."""

    sharing: frozenset[SharingLevel] = frozenset()
    status: frozenset[CameraStatus] = frozenset()
    kind: frozenset[CameraKind] = frozenset()
    owner: frozenset[str] = frozenset()

    def matches(self, candidate: Candidate) -> bool:
        return (
            (not self.sharing or candidate.sharing in self.sharing)
            and (not self.status or candidate.status in self.status)
            and (not self.kind or candidate.kind in self.kind)
            and (not self.owner or candidate.owner_id in self.owner)
        )

    def matches_camera(self, camera: Camera) -> bool:
        return self.matches(candidate_of(camera))


class Candidate(NamedTuple):
    """What a spatial index returns for one camera: enough to rank and filter it exactly."""

    id: str
    lat: float
    lon: float
    heading: float
    fov: float
    range_m: float
    sharing: str
    kind: str
    owner_id: str
    status: str
    doc: str | None = None
    """The engine's stored form of the camera's other fields, when the index read it anyway."""
    last_frame_time: float | None = None


def candidate_of(camera: Camera) -> Candidate:
    return Candidate(camera.id, camera.lat, camera.lon, camera.heading, camera.fov,
                     camera.range_m, str(camera.sharing), str(camera.kind), camera.owner_id,
                     str(camera.status))


@dataclass(frozen=True, slots=True)
class Hit:
    camera: Camera
    distance_m: float | None = None
    """From the query point (near, radius, sees) or from the route (along)."""
    bearing_deg: float | None = None
    """Direction from the query point to the camera, degrees clockwise from north."""
    sees: bool | None = None
    """Whether the camera's view cone holds the query point."""
    along_m: float | None = None
    """For route queries: how far along the route the camera is."""


@dataclass(frozen=True, slots=True)
class SearchResult:
    hits: list[Hit] = field(default_factory=list)
    total: int | None = None
    """How many cameras matched in all (None for nearest-N, where it is not computed)."""


@dataclass(frozen=True, slots=True)
class Page:
    offset: int = 0
    limit: int = 100
