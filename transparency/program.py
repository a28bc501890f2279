"""The camera program in numbers: cameras by sharing level and district, footage requests made
and approved, live views opened. Counts only: no camera's location or owner leaves here."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from rtcc.public_data import CameraPoint
from rtcc.transparency_config import District
from transparency.districts import district_of

SHARING_LEVELS = ("registry_only", "on_request", "live_emergency", "live_always")
SHARING_LABELS = {
    "registry_only": "Registered only (location known to the RTCC, no video)",
    "on_request": "Recorded footage on request",
    "live_emergency": "Live view during emergencies",
    "live_always": "Live view at any time",
}
FOOTAGE_REQUESTED = "footage_request.create"
FOOTAGE_APPROVED = "footage_request.approve"
LIVE_VIEW = "view.start"
ACTIONS = (FOOTAGE_REQUESTED, FOOTAGE_APPROVED, LIVE_VIEW)


@dataclass(frozen=True, slots=True)
class CameraCount:
    district: str
    sharing: str
    cameras: int


@dataclass(frozen=True, slots=True)
class MonthActivity:
    month: str
    footage_requests_made: int
    footage_requests_approved: int
    live_views_opened: int


@dataclass(frozen=True, slots=True)
class ProgramNumbers:
    cameras_total: int
    by_sharing: dict[str, int]
    by_district: list[CameraCount]
    activity: list[MonthActivity]
    activity_available: bool
    """False when the audit log could not be read: the page says so instead of showing zeros."""


def program_numbers(cameras: list[CameraPoint], counts: dict[str, dict[str, int]] | None,
                    districts: list[District]) -> ProgramNumbers:
    by_sharing = Counter(camera.sharing for camera in cameras)
    by_district = Counter((district_of(districts, c.lat, c.lon), c.sharing) for c in cameras)
    months = sorted({m for per in (counts or {}).values() for m in per})
    activity = [MonthActivity(
        month,
        (counts or {}).get(FOOTAGE_REQUESTED, {}).get(month, 0),
        (counts or {}).get(FOOTAGE_APPROVED, {}).get(month, 0),
        (counts or {}).get(LIVE_VIEW, {}).get(month, 0)) for month in months]
    return ProgramNumbers(
        cameras_total=len(cameras),
        by_sharing={level: by_sharing.get(level, 0) for level in SHARING_LEVELS},
        by_district=[CameraCount(d, s, n) for (d, s), n in sorted(by_district.items())],
        activity=activity, activity_available=counts is not None)
