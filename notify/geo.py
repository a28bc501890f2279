"""Distances and areas on the map: who is inside a circle or polygon, how far from a point.

Distances are great-circle (haversine on the mean Earth radius). A facility with a footprint
polygon is as far as its nearest edge (0 when the point is inside); edges are measured on a
local flat projection around the point, exact to well under a metre at notification ranges.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

EARTH_RADIUS_M = 6_371_008.8
LatLon = tuple[float, float]


def distance_m(a: LatLon, b: LatLon) -> float:
    lat1, lon1 = map(math.radians, a)
    lat2, lon2 = map(math.radians, b)
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def _local(origin: LatLon, p: LatLon) -> tuple[float, float]:
    """``p`` in metres east and north of ``origin``."""
    k = math.radians(1) * EARTH_RADIUS_M
    return ((p[1] - origin[1]) * k * math.cos(math.radians(origin[0])), (p[0] - origin[0]) * k)


def inside(point: LatLon, polygon: Sequence[LatLon]) -> bool:
    """Even-odd rule; the polygon may or may not repeat its first vertex."""
    lat, lon = point
    result = False
    n = len(polygon)
    for i in range(n):
        (a_lat, a_lon), (b_lat, b_lon) = polygon[i], polygon[(i + 1) % n]
        if (a_lat > lat) != (b_lat > lat):
            cross = a_lon + (lat - a_lat) * (b_lon - a_lon) / (b_lat - a_lat)
            if lon < cross:
                result = not result
    return result


def distance_to_polygon_m(point: LatLon, polygon: Sequence[LatLon]) -> float:
    if len(polygon) < 3:
        return min((distance_m(point, v) for v in polygon), default=math.inf)
    if inside(point, polygon):
        return 0.0
    best = math.inf
    n = len(polygon)
    for i in range(n):
        ax, ay = _local(point, polygon[i])
        bx, by = _local(point, polygon[(i + 1) % n])
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        t = 0.0 if length2 == 0 else max(0.0, min(1.0, -(ax * dx + ay * dy) / length2))
        best = min(best, math.hypot(ax + t * dx, ay + t * dy))
    return best


def centroid(polygon: Sequence[LatLon]) -> LatLon:
    return (sum(p[0] for p in polygon) / len(polygon), sum(p[1] for p in polygon) / len(polygon))
