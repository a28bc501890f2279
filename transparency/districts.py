"""Which configured district a point lies in."""

from __future__ import annotations

from rtcc.transparency_config import District

OUTSIDE = "Outside the districts"
UNKNOWN = "Location unknown"


def contains(polygon: list[tuple[float, float]], lat: float, lon: float) -> bool:
    """Ray casting over (lat, lon) vertices; a point on an edge may fall either side."""
    inside = False
    j = len(polygon) - 1
    for i, (lat_i, lon_i) in enumerate(polygon):
        lat_j, lon_j = polygon[j]
        if (lat_i > lat) != (lat_j > lat):
            crossing = lon_i + (lat - lat_i) * (lon_j - lon_i) / (lat_j - lat_i)
            if lon < crossing:
                inside = not inside
        j = i
    return inside


def district_of(districts: list[District], lat: float | None, lon: float | None) -> str:
    if lat is None or lon is None:
        return UNKNOWN
    for district in districts:
        if contains(district.polygon, lat, lon):
            return district.name
    return OUTSIDE
