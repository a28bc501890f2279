"""Geometry on the sphere: distances, bearings, view cones and index bounding boxes.

Distances are great-circle (haversine) on a sphere of the Earth's mean radius. Bounding boxes are
the pre-filter of the spatial indexes: they are always a superset of the exact region (never
miss a camera), are split in two where they cross the antimeridian, and cover every longitude
when the region reaches a pole. Scalar checks raise :class:`FieldError` naming the field and the
allowed range.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from catalog.errors import FieldError

EARTH_RADIUS_M = 6_371_008.8
"""Mean Earth radius (IUGG), metres."""

MAX_RADIUS_M = 50_000.0
"""Largest radius a search may ask for."""
MAX_RANGE_M = 5_000.0
"""Largest view range a camera may declare (matches the configuration file's limit)."""

_BOX_PAD_DEG = 1e-5
"""Padding added to every index box: covers float32 rounding in SQLite's R*Tree (~1 m)."""


# -- scalar validation ------------------------------------------------------------------------


def check_number(
    value: object,
    field: str,
    low: float,
    high: float,
    *,
    low_inclusive: bool = True,
    unit: str = "",
) -> float:
    """A finite number within [low, high] (or (low, high] when ``low_inclusive`` is false)."""
    if value.__class__ is not bool and isinstance(value, int | float | str):
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if (low <= number if low_inclusive else low < number) and number <= high:
                return number  # also refuses NaN, which compares false with everything
    allowed = f"{'' if low_inclusive else '>'}{_fmt(low)}..{_fmt(high)}{unit}"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise FieldError(field, "must be a number", allowed)
    try:
        number = float(value)
    except ValueError:
        raise FieldError(field, f"not a number: {str(value)[:40]!r}", allowed) from None
    if not math.isfinite(number):
        raise FieldError(field, "must be a finite number (NaN and Infinity are refused)", allowed)
    raise FieldError(field, f"{_fmt(number)} is out of range", allowed)


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() and abs(number) < 1e15 else str(number)


def check_lat(value: object, field: str = "lat") -> float:
    return check_number(value, field, -90.0, 90.0, unit=" degrees")


def check_lon(value: object, field: str = "lon") -> float:
    return check_number(value, field, -180.0, 180.0, unit=" degrees")


def check_heading(value: object, field: str = "heading") -> float:
    return check_number(value, field, 0.0, 360.0, unit=" degrees")


def check_fov(value: object, field: str = "fov") -> float:
    return check_number(value, field, 1.0, 360.0, unit=" degrees")


def check_range(value: object, field: str = "range_m") -> float:
    return check_number(value, field, 0.0, MAX_RANGE_M, low_inclusive=False, unit=" m")


def check_radius(value: object, field: str = "radius_m", high: float = MAX_RADIUS_M) -> float:
    return check_number(value, field, 0.0, high, low_inclusive=False, unit=" m")


def parse_point(text: str, field: str) -> tuple[float, float]:
    """``"LAT,LON"`` as written in a query string."""
    parts = text.split(",")
    if len(parts) != 2:
        raise FieldError(field, "expected LAT,LON", "latitude -90..90, longitude -180..180")
    return check_lat(parts[0].strip(), field), check_lon(parts[1].strip(), field)


# -- sphere -----------------------------------------------------------------------------------


def wrap_lon(lon: float) -> float:
    """Longitude folded into [-180, 180)."""
    return (lon + 180.0) % 360.0 - 180.0


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1 = math.radians(lat1)
    p2 = math.radians(lat2)
    half_dp = (p2 - p1) / 2.0
    half_dl = math.radians(lon2 - lon1) / 2.0
    a = math.sin(half_dp) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(half_dl) ** 2
    return 2.0 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def haversine_many(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """Distances from one point to many (the same formula as :func:`haversine_m`)."""
    p1 = math.radians(lat)
    p2 = np.radians(lats)
    half_dp = (p2 - p1) / 2.0
    half_dl = np.radians(lons - lon) / 2.0
    a = np.sin(half_dp) ** 2 + math.cos(p1) * np.cos(p2) * np.sin(half_dl) ** 2
    result: np.ndarray = 2.0 * EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, np.sqrt(a)))
    return result


def initial_bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Direction to travel from point 1 toward point 2, degrees clockwise from north."""
    p1 = math.radians(lat1)
    p2 = math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    if x == 0.0 and y == 0.0:
        return 0.0
    return (math.degrees(math.atan2(y, x)) + 360.0) % 360.0


def angle_between_deg(a: float, b: float) -> float:
    """Smallest angle between two directions, 0..180."""
    diff = abs(a - b) % 360.0
    return min(diff, 360.0 - diff)


def destination(lat: float, lon: float, bearing: float, distance_m: float) -> tuple[float, float]:
    """The point reached going ``distance_m`` from (lat, lon) along ``bearing``."""
    delta = distance_m / EARTH_RADIUS_M
    theta = math.radians(bearing)
    p1 = math.radians(lat)
    sin_p2 = math.sin(p1) * math.cos(delta) + math.cos(p1) * math.sin(delta) * math.cos(theta)
    p2 = math.asin(max(-1.0, min(1.0, sin_p2)))
    y = math.sin(theta) * math.sin(delta) * math.cos(p1)
    x = math.cos(delta) - math.sin(p1) * sin_p2
    lon2 = math.radians(lon) + math.atan2(y, x)
    return math.degrees(p2), wrap_lon(math.degrees(lon2))


def intermediate(
    lat1: float, lon1: float, lat2: float, lon2: float, fraction: float
) -> tuple[float, float]:
    """The point at ``fraction`` of the great-circle way from point 1 to point 2."""
    delta = haversine_m(lat1, lon1, lat2, lon2) / EARTH_RADIUS_M
    if delta < 1e-12:
        return lat1, lon1
    a = math.sin((1 - fraction) * delta) / math.sin(delta)
    b = math.sin(fraction * delta) / math.sin(delta)
    p1, l1, p2, l2 = map(math.radians, (lat1, lon1, lat2, lon2))
    x = a * math.cos(p1) * math.cos(l1) + b * math.cos(p2) * math.cos(l2)
    y = a * math.cos(p1) * math.sin(l1) + b * math.cos(p2) * math.sin(l2)
    z = a * math.sin(p1) + b * math.sin(p2)
    return math.degrees(math.atan2(z, math.hypot(x, y))), math.degrees(math.atan2(y, x))


def cone_contains(
    cam_lat: float,
    cam_lon: float,
    heading: float,
    fov: float,
    range_m: float,
    lat: float,
    lon: float,
) -> bool:
    """Whether a camera's view cone (a circular sector on the sphere) holds the point."""
    distance = haversine_m(cam_lat, cam_lon, lat, lon)
    if distance > range_m:
        return False
    if fov >= 360.0 or distance < 1e-3:
        return True
    bearing = initial_bearing_deg(cam_lat, cam_lon, lat, lon)
    return angle_between_deg(bearing, heading) <= fov / 2.0 + 1e-9


# -- bounding boxes ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Box:
    """A latitude/longitude rectangle with ``min_lon <= max_lon`` (never crosses 180)."""

    min_lat: float
    min_lon: float
    max_lat: float
    max_lon: float

    def contains(self, lat: float, lon: float) -> bool:
        return self.min_lat <= lat <= self.max_lat and self.min_lon <= lon <= self.max_lon


@dataclass(frozen=True, slots=True)
class Circle:
    """A search circle: every point within ``radius_m`` of the centre."""

    lat: float
    lon: float
    radius_m: float


def split_box(min_lat: float, max_lat: float, min_lon: float, max_lon: float) -> list[Box]:
    """Boxes covering a latitude band and an unwrapped longitude interval (may pass 180)."""
    min_lat = max(-90.0, min_lat - _BOX_PAD_DEG)
    max_lat = min(90.0, max_lat + _BOX_PAD_DEG)
    min_lon -= _BOX_PAD_DEG
    max_lon += _BOX_PAD_DEG
    if max_lon - min_lon >= 360.0:
        return [Box(min_lat, -180.0, max_lat, 180.0)]
    shift = math.floor((min_lon + 180.0) / 360.0) * 360.0
    min_lon -= shift
    max_lon -= shift
    if max_lon <= 180.0:
        return [Box(min_lat, min_lon, max_lat, max_lon)]
    return [Box(min_lat, min_lon, max_lat, 180.0), Box(min_lat, -180.0, max_lat, max_lon - 360.0)]


def circle_extent(lat: float, lon: float, radius_m: float) -> tuple[float, float, float, float]:
    """(min_lat, max_lat, min_lon, max_lon) around a circle, longitudes unwrapped around lon.

    Exact for a sphere (the longitude extent uses the tangent-meridian formula). When the circle
    reaches a pole, every longitude is covered.
    """
    delta = radius_m / EARTH_RADIUS_M
    dlat = math.degrees(delta)
    min_lat, max_lat = lat - dlat, lat + dlat
    if max_lat >= 90.0 or min_lat <= -90.0 or delta >= math.pi / 2:
        return max(-90.0, min_lat), min(90.0, max_lat), -180.0, 180.0
    ratio = math.sin(delta) / math.cos(math.radians(lat))
    if ratio >= 1.0:
        return min_lat, max_lat, -180.0, 180.0
    dlon = math.degrees(math.asin(ratio))
    return min_lat, max_lat, lon - dlon, lon + dlon


def circle_boxes(lat: float, lon: float, radius_m: float) -> list[Box]:
    return split_box(*circle_extent(lat, lon, radius_m))


def _unwrap_near(lon: float, reference: float) -> float:
    return reference + wrap_lon(lon - reference)


def cone_boxes(lat: float, lon: float, heading: float, fov: float, range_m: float) -> list[Box]:
    """Boxes covering a camera's view cone (tighter than its range circle when fov < 360).

    The sector's extent is computed on the local tangent plane (exact for a plane: the centre,
    both ends of the arc, and the arc's points due north, east, south and west when the sector
    holds them), then padded by 1 % of the range plus 1 m, more than the plane's error for
    ranges up to 5 km below 80 degrees of latitude. Nearer the poles the exact circle box is used.
    """
    min_lat, max_lat, min_lon, max_lon = circle_extent(lat, lon, range_m)
    if fov >= 360.0 or abs(lat) > 80.0 or (min_lon, max_lon) == (-180.0, 180.0):
        return split_box(min_lat, max_lat, min_lon, max_lon)
    half = fov / 2.0
    east = north = west = south = 0.0
    for bearing in (heading - half, heading + half):
        theta = math.radians(bearing)
        dx, dy = math.sin(theta), math.cos(theta)
        east, west = max(east, dx), min(west, dx)
        north, south = max(north, dy), min(south, dy)
    diff = (heading - 0.0) % 360.0
    if min(diff, 360.0 - diff) <= half:
        north = 1.0
    diff = (heading - 90.0) % 360.0
    if min(diff, 360.0 - diff) <= half:
        east = 1.0
    diff = (heading - 180.0) % 360.0
    if min(diff, 360.0 - diff) <= half:
        south = -1.0
    diff = (heading - 270.0) % 360.0
    if min(diff, 360.0 - diff) <= half:
        west = -1.0
    reach = range_m * 1.01 + 1.0
    deg_lat = math.degrees(reach / EARTH_RADIUS_M)
    deg_lon = deg_lat / math.cos(math.radians(lat))
    pad_lat = math.degrees(1.0 / EARTH_RADIUS_M)
    return split_box(
        max(min_lat, lat + south * deg_lat - pad_lat - 0.01 * deg_lat),
        min(max_lat, lat + north * deg_lat + pad_lat + 0.01 * deg_lat),
        max(min_lon, lon + west * deg_lon - 0.01 * deg_lon),
        min(max_lon, lon + east * deg_lon + 0.01 * deg_lon),
    )


def merge_boxes(groups: Iterable[list[Box]]) -> list[Box]:
    """All boxes of several regions, without exact duplicates."""
    seen: dict[Box, None] = {}
    for group in groups:
        for box in group:
            seen.setdefault(box, None)
    return list(seen)
