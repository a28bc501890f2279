"""Search shapes from GeoJSON: polygons (with holes) and routes (a LineString plus a buffer).

Polygon edges are straight lines in longitude/latitude, as RFC 7946 defines them. A ring that
crosses the antimeridian is unwrapped (each vertex taken within 180 degrees of the previous one),
so ``[[179.9, -18], [-179.9, -18], ...]`` is the small polygon around Fiji, not a band around the
world. A ring whose unwrapped longitudes wind once around the globe encircles a pole: the one on
the side of its mean latitude. Routes use great-circle segments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from catalog.errors import FieldError
from catalog.geo import (
    EARTH_RADIUS_M,
    Box,
    Circle,
    check_lat,
    check_lon,
    check_number,
    circle_boxes,
    haversine_m,
    initial_bearing_deg,
    intermediate,
    split_box,
    wrap_lon,
)

MAX_VERTICES = 1000
"""Most vertices a polygon (all rings together) or a route may have."""
MAX_POLYGON_RADIUS_M = 100_000.0
"""A search polygon must fit in a circle of this radius."""
MAX_ROUTE_LENGTH_M = 200_000.0
MAX_ROUTE_BUFFER_M = 5_000.0
_PIECE_M = 2_000.0
"""Routes are cut into pieces of at most this length to build their index regions."""


def _positions(value: object, field: str) -> list[tuple[float, float]]:
    """A GeoJSON position list as (lon, lat) pairs, checked."""
    if not isinstance(value, list):
        raise FieldError(field, "must be a list of [longitude, latitude] positions")
    out: list[tuple[float, float]] = []
    for index, position in enumerate(value):
        where = f"{field}[{index}]"
        if not isinstance(position, list | tuple) or len(position) not in (2, 3):
            raise FieldError(where, "must be a [longitude, latitude] position",
                             "longitude -180..180, latitude -90..90")
        out.append((check_lon(position[0], where), check_lat(position[1], where)))
    return out


class _Ring:
    """One ring, unwrapped across the antimeridian, ready for planar point-in-ring tests."""

    def __init__(self, positions: list[tuple[float, float]], field: str, reference: float) -> None:
        if len(positions) >= 2 and positions[0] == positions[-1]:
            positions = positions[:-1]
        distinct = {(wrap_lon(lon), lat) for lon, lat in positions}
        if len(distinct) < 3:
            raise FieldError(field, "a ring needs at least 3 distinct positions", "3..1000")
        lons = [reference + wrap_lon(positions[0][0] - reference)]
        for lon, _ in positions[1:]:
            lons.append(lons[-1] + wrap_lon(lon - lons[-1]))
        self.lats = [lat for _, lat in positions]
        closing = wrap_lon(positions[0][0] - lons[-1])
        winding = lons[-1] + closing - lons[0]
        self.pole = 0
        if abs(winding) > 180.0:
            self.pole = 1 if sum(self.lats) >= 0 else -1
        self.lons = lons
        self.closing_lon = lons[-1] + closing
        # The planar outline: the ring itself, closed through the pole when it winds around one.
        self.xs = list(lons)
        self.ys = list(self.lats)
        if self.pole:
            pole_lat = 90.0 * self.pole
            self.xs += [self.closing_lon, self.closing_lon, lons[0]]
            self.ys += [self.lats[0], pole_lat, pole_lat]
        self.min_x, self.max_x = min(self.xs), max(self.xs)
        self.field = field
        self.area = _planar_area(self.xs, self.ys)

    def edges(self) -> list[tuple[float, float, float, float]]:
        xs = [*self.lons, self.closing_lon]
        ys = [*self.lats, self.lats[0]]
        return [(xs[i], ys[i], xs[i + 1], ys[i + 1]) for i in range(len(xs) - 1)]

    def contains(self, lat: float, lon: float) -> bool:
        if self.pole and lat * self.pole >= 90.0:
            return True  # the pole itself, on the outline's closing edge
        x = self.min_x + (lon - self.min_x) % 360.0
        while x <= self.max_x:
            if _point_in_planar(x, lat, self.xs, self.ys):
                return True
            x += 360.0
        return False


def _planar_area(xs: list[float], ys: list[float]) -> float:
    total = 0.0
    for i in range(len(xs)):
        j = (i + 1) % len(xs)
        total += xs[i] * ys[j] - xs[j] * ys[i]
    return abs(total) / 2.0


def _collinear(xs: list[float], ys: list[float]) -> bool:
    x0, y0 = xs[0], ys[0]
    far = max(range(len(xs)), key=lambda i: abs(xs[i] - x0) + abs(ys[i] - y0))
    dx, dy = xs[far] - x0, ys[far] - y0
    return all(abs(dx * (ys[i] - y0) - dy * (xs[i] - x0)) < 1e-18 for i in range(len(xs)))


def _point_in_planar(x: float, y: float, xs: list[float], ys: list[float]) -> bool:
    inside = False
    n = len(xs)
    j = n - 1
    for i in range(n):
        yi, yj = ys[i], ys[j]
        if (yi > y) != (yj > y):
            cross_x = xs[i] + (y - yi) * (xs[j] - xs[i]) / (yj - yi)
            if x < cross_x:
                inside = not inside
        j = i
    return inside


def _self_intersecting(edges: list[tuple[float, float, float, float]], ring_of: list[int]) -> bool:
    """Whether two non-adjacent edges touch or cross (vectorised, O(n^2) for n <= 1000)."""
    arr = np.asarray(edges, dtype=np.float64)
    ring = np.asarray(ring_of)
    ax, ay, bx, by = arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3]
    n = len(edges)
    index = np.arange(n)
    ring_len = np.bincount(ring)[ring]
    first: dict[int, int] = {}
    for position_index, number in enumerate(ring_of):
        first.setdefault(number, position_index)
    ring_start = np.array([first[number] for number in ring_of])
    position = index - ring_start

    def orient(px: np.ndarray, py: np.ndarray, qx: np.ndarray, qy: np.ndarray,
               rx: np.ndarray, ry: np.ndarray) -> np.ndarray:
        value = (qx - px) * (ry - py) - (qy - py) * (rx - px)
        result: np.ndarray = np.sign(np.where(np.abs(value) < 1e-18, 0.0, value))
        return result

    for i in range(n):
        j = index[i + 1:]
        if j.size == 0:
            break
        same = ring[j] == ring[i]
        gap = np.abs(position[j] - position[i])
        adjacent = same & ((gap == 1) | (gap == ring_len[i] - 1))
        o1 = orient(ax[i], ay[i], bx[i], by[i], ax[j], ay[j])
        o2 = orient(ax[i], ay[i], bx[i], by[i], bx[j], by[j])
        o3 = orient(ax[j], ay[j], bx[j], by[j], ax[i], ay[i])
        o4 = orient(ax[j], ay[j], bx[j], by[j], bx[i], by[i])
        crossing = (o1 * o2 <= 0) & (o3 * o4 <= 0)
        collinear = (o1 == 0) & (o2 == 0)
        overlap = (
            (np.minimum(ax[j], bx[j]) <= max(ax[i], bx[i]))
            & (np.maximum(ax[j], bx[j]) >= min(ax[i], bx[i]))
            & (np.minimum(ay[j], by[j]) <= max(ay[i], by[i]))
            & (np.maximum(ay[j], by[j]) >= min(ay[i], by[i]))
        )
        hit = crossing & ~adjacent & (~collinear | overlap)
        # Adjacent edges may only share their common vertex: folding back onto each other is a
        # self-intersection too.
        folded = adjacent & collinear & _opposite(ax[i], ay[i], bx[i], by[i], ax[j], ay[j], bx[j],
                                                  by[j])
        if bool(np.any(hit | folded)):
            return True
    return False


def _opposite(ax: float, ay: float, bx: float, by: float, cx: np.ndarray, cy: np.ndarray,
              dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    dot: np.ndarray = (bx - ax) * (dx - cx) + (by - ay) * (dy - cy)
    result: np.ndarray = dot < 0
    return result


class GeoPolygon:
    """A GeoJSON Polygon (outer ring and optional holes) that answers point-in-polygon."""

    def __init__(self, rings: list[list[tuple[float, float]]], field: str = "polygon") -> None:
        total = sum(len(ring) for ring in rings)
        if total > MAX_VERTICES:
            raise FieldError(field, f"{total} positions is too many", f"at most {MAX_VERTICES}")
        if not rings:
            raise FieldError(field, "a polygon needs an outer ring")
        outer = _Ring(rings[0], f"{field}.coordinates[0]", rings[0][0][0] if rings[0] else 0.0)
        self._outer = outer
        self._holes = [
            _Ring(ring, f"{field}.coordinates[{i + 1}]", outer.lons[0])
            for i, ring in enumerate(rings[1:])
        ]
        for ring in [outer, *self._holes]:
            if _collinear(ring.xs, ring.ys):
                raise FieldError(ring.field, "the ring has no area (all positions on one line)")
        edges: list[tuple[float, float, float, float]] = []
        ring_of: list[int] = []
        for number, ring in enumerate([outer, *self._holes]):
            ring_edges = ring.edges()
            edges += ring_edges
            ring_of += [number] * len(ring_edges)
        if _self_intersecting(edges, ring_of):
            raise FieldError(field, "the polygon intersects itself", "a simple polygon whose "
                             "edges meet only at their shared vertices")
        self.vertex_count = total
        self._circle = self._enclosing_circle()
        if self._circle.radius_m > MAX_POLYGON_RADIUS_M:
            raise FieldError(field, "the polygon is too large",
                             f"a polygon that fits in a circle of {MAX_POLYGON_RADIUS_M:.0f} m")

    @property
    def outer(self) -> list[tuple[float, float]]:
        """Outer ring as (lon, lat), longitudes folded into [-180, 180)."""
        return [(wrap_lon(lon), lat) for lon, lat in zip(self._outer.lons, self._outer.lats,
                                                         strict=True)]

    def contains(self, lat: float, lon: float) -> bool:
        if not self._outer.contains(lat, lon):
            return False
        return not any(hole.contains(lat, lon) for hole in self._holes)

    def boxes(self) -> list[Box]:
        ring = self._outer
        if ring.pole:
            lats = ring.lats
            if ring.pole > 0:
                return split_box(min(lats), 90.0, -180.0, 180.0)
            return split_box(-90.0, max(lats), -180.0, 180.0)
        return split_box(min(ring.lats), max(ring.lats), ring.min_x, ring.max_x)

    def circles(self) -> list[Circle]:
        return [self._circle]

    def _enclosing_circle(self) -> Circle:
        ring = self._outer
        points = list(zip(ring.lats, ring.lons, strict=True))
        if ring.pole:
            points.append((90.0 * ring.pole, ring.lons[0]))
        x = y = z = 0.0
        for lat, lon in points:
            p, q = math.radians(lat), math.radians(lon)
            x += math.cos(p) * math.cos(q)
            y += math.cos(p) * math.sin(q)
            z += math.sin(p)
        if math.hypot(x, y, z) < 1e-9:
            return Circle(0.0, 0.0, math.pi * EARTH_RADIUS_M)
        c_lat = math.degrees(math.atan2(z, math.hypot(x, y)))
        c_lon = math.degrees(math.atan2(y, x))
        # Edges are straight in lon/lat: walk them in steps of <= 1 km so the radius covers them.
        radius = 0.0
        edges = ring.edges()
        for a_lon, a_lat, b_lon, b_lat in edges:
            steps = max(1, min(200, math.ceil(haversine_m(a_lat, a_lon, b_lat, b_lon) / 1000.0)))
            for k in range(steps + 1):
                t = k / steps
                lat = a_lat + (b_lat - a_lat) * t
                lon = a_lon + (b_lon - a_lon) * t
                radius = max(radius, haversine_m(c_lat, c_lon, lat, lon))
        if ring.pole:
            radius = max(radius, haversine_m(c_lat, c_lon, 90.0 * ring.pole, 0.0))
        longest = max(haversine_m(a_lat, a_lon, b_lat, b_lon)
                      for a_lon, a_lat, b_lon, b_lat in edges)
        step = longest / max(1, min(200, math.ceil(longest / 1000.0)))
        return Circle(c_lat, wrap_lon(c_lon), radius * 1.001 + step / 2.0 + 1.0)


def parse_polygon(value: object, field: str = "polygon") -> GeoPolygon:
    """A GeoJSON Polygon geometry (or a Feature holding one)."""
    if isinstance(value, dict) and value.get("type") == "Feature":
        value = value.get("geometry")
    if not isinstance(value, dict) or value.get("type") != "Polygon":
        raise FieldError(field, "must be a GeoJSON Polygon", '{"type": "Polygon", '
                         '"coordinates": [[[lon, lat], ...]]}')
    coordinates = value.get("coordinates")
    if not isinstance(coordinates, list) or not coordinates:
        raise FieldError(f"{field}.coordinates", "must be a list of rings")
    total = sum(len(ring) for ring in coordinates if isinstance(ring, list))
    if total > MAX_VERTICES:
        raise FieldError(field, f"{total} positions is too many", f"at most {MAX_VERTICES}")
    rings = [_positions(ring, f"{field}.coordinates[{i}]") for i, ring in enumerate(coordinates)]
    return GeoPolygon(rings, field)


@dataclass(frozen=True, slots=True)
class RoutePosition:
    distance_m: float
    """Distance from the route (0 on it)."""
    along_m: float
    """Distance along the route from its start to the closest point."""


class GeoRoute:
    """A LineString of great-circle segments with a buffer distance."""

    def __init__(self, points: Sequence[tuple[float, float]], buffer_m: float,
                 field: str = "route") -> None:
        """``points`` as (lat, lon)."""
        if len(points) < 2:
            raise FieldError(field, "a route needs at least 2 positions", f"2..{MAX_VERTICES}")
        if len(points) > MAX_VERTICES:
            raise FieldError(field, f"{len(points)} positions is too many",
                             f"at most {MAX_VERTICES}")
        self.points = list(points)
        self.buffer_m = buffer_m
        self._lengths = [
            haversine_m(a[0], a[1], b[0], b[1]) for a, b in zip(self.points, self.points[1:],
                                                               strict=False)
        ]
        self.length_m = sum(self._lengths)
        if self.length_m > MAX_ROUTE_LENGTH_M:
            raise FieldError(field, f"the route is {self.length_m:.0f} m long",
                             f"at most {MAX_ROUTE_LENGTH_M:.0f} m")

    def locate(self, lat: float, lon: float) -> RoutePosition:
        best = RoutePosition(math.inf, 0.0)
        start = 0.0
        for (a_lat, a_lon), (b_lat, b_lon), length in zip(
            self.points, self.points[1:], self._lengths, strict=False
        ):
            cross, along = _segment_position(a_lat, a_lon, b_lat, b_lon, length, lat, lon)
            if cross < best.distance_m:
                best = RoutePosition(cross, start + along)
            start += length
        return best

    def circles(self) -> list[Circle]:
        """Circles whose union covers every point within the buffer of the route."""
        out: list[Circle] = []
        for (a_lat, a_lon), (b_lat, b_lon), length in zip(
            self.points, self.points[1:], self._lengths, strict=False
        ):
            pieces = max(1, math.ceil(length / _PIECE_M))
            for k in range(pieces):
                m_lat, m_lon = intermediate(a_lat, a_lon, b_lat, b_lon, (k + 0.5) / pieces)
                radius = (length / pieces) / 2.0 + self.buffer_m
                out.append(Circle(m_lat, m_lon, radius * 1.001 + 1.0))
        return out

    def boxes(self) -> list[Box]:
        boxes: list[Box] = []
        for circle in self.circles():
            boxes += circle_boxes(circle.lat, circle.lon, circle.radius_m)
        return boxes


def _segment_position(
    a_lat: float, a_lon: float, b_lat: float, b_lon: float, length: float, lat: float, lon: float
) -> tuple[float, float]:
    """(cross-track distance, along-track distance) of a point to a great-circle segment."""
    d13 = haversine_m(a_lat, a_lon, lat, lon)
    if length < 1e-6 or d13 < 1e-6:
        return d13, 0.0
    theta13 = math.radians(initial_bearing_deg(a_lat, a_lon, lat, lon))
    theta12 = math.radians(initial_bearing_deg(a_lat, a_lon, b_lat, b_lon))
    delta13 = d13 / EARTH_RADIUS_M
    if math.cos(theta13 - theta12) < 0:
        return d13, 0.0
    sin_xt = math.sin(delta13) * math.sin(theta13 - theta12)
    delta_xt = math.asin(max(-1.0, min(1.0, sin_xt)))
    cos_ratio = math.cos(delta13) / max(1e-15, math.cos(delta_xt))
    along = math.acos(max(-1.0, min(1.0, cos_ratio))) * EARTH_RADIUS_M
    if along > length:
        return haversine_m(b_lat, b_lon, lat, lon), length
    return abs(delta_xt) * EARTH_RADIUS_M, along


def parse_route(value: object, buffer_m: object, field: str = "route") -> GeoRoute:
    """A GeoJSON LineString (or a Feature holding one) and a buffer in metres."""
    if isinstance(value, dict) and value.get("type") == "Feature":
        value = value.get("geometry")
    if not isinstance(value, dict) or value.get("type") != "LineString":
        raise FieldError(field, "must be a GeoJSON LineString",
                         '{"type": "LineString", "coordinates": [[lon, lat], ...]}')
    coordinates = value.get("coordinates")
    if isinstance(coordinates, list) and len(coordinates) > MAX_VERTICES:
        raise FieldError(field, f"{len(coordinates)} positions is too many",
                         f"at most {MAX_VERTICES}")
    positions = _positions(coordinates, f"{field}.coordinates")
    buffer = check_number(buffer_m, "buffer_m", 0.0, MAX_ROUTE_BUFFER_M, low_inclusive=False,
                          unit=" m")
    return GeoRoute([(lat, lon) for lon, lat in positions], buffer, field)
