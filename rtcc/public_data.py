"""What the public transparency pages read from the rest of the server: small, read-only
contracts, wired by the composition root. Nothing here carries a camera's exact location out of
the server: camera points are counted by district and never published."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class CadRecord:
    """One CAD incident as the transparency pages need it: type, priority, place, CAD times."""

    incident_id: str
    type_code: str | None
    type_text: str | None
    priority: int | None
    lat: float | None
    lon: float | None
    address: str | None
    call_received: datetime | None = None
    entered: datetime | None = None
    dispatched: datetime | None = None
    en_route: datetime | None = None
    on_scene: datetime | None = None
    cleared: datetime | None = None


class CadHistory(Protocol):
    async def cad_records(self) -> list[CadRecord]:
        """Every CAD incident the server holds (the caller filters by time)."""
        ...


@dataclass(frozen=True, slots=True)
class CameraPoint:
    """A registered camera, for counting only: its sharing level and where it is."""

    sharing: str
    lat: float
    lon: float


class CameraCensus(Protocol):
    async def camera_points(self) -> list[CameraPoint]: ...


class AuditCounts(Protocol):
    async def monthly_counts(self, actions: Sequence[str],
                             since: float) -> dict[str, dict[str, int]]:
        """Successful audit entries of each action since ``since`` (epoch seconds), by month
        (``YYYY-MM``, UTC): ``{action: {month: count}}``."""
        ...
