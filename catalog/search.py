"""The geographic queries, written once over two engine primitives.

An engine supplies a superset of the cameras in a region (``_candidates``), the cameras whose
view cone might hold a point (``_covering``) and full records by id (``_load``). Exact distances,
cone tests, filters, ranking and paging happen here, so SQLite and Redis answer identically.
"""

from __future__ import annotations

import json
import math
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from catalog.geo import (
    EARTH_RADIUS_M,
    MAX_RADIUS_M,
    Box,
    Circle,
    circle_boxes,
    cone_contains,
    haversine_m,
    initial_bearing_deg,
)
from catalog.model import Camera, camera_from_parts, status_from
from catalog.query import Candidate, Filters, Hit, Page, SearchResult
from catalog.shapes import GeoPolygon, GeoRoute

FIRST_RADIUS_M = 400.0
"""Nearest-N starts looking this far out, then widens."""
_NO_FILTERS = Filters()
_DEFAULT_PAGE = Page()
T = TypeVar("T")


class DecodedCameras:
    """Cameras already decoded from their stored form, least recently used dropped first.

    The key is the whole candidate the index returned: every stored field the camera is built
    from (position, cone, sharing, owner, status, the document text). A camera that changed in
    any way (an owner lowering its sharing, a new status, an edit made by another process) reads
    back as a different key, so an entry can never answer for a newer version: nothing has to be
    invalidated for correctness, and an answer is always built from what the index read in this
    very query. Lookups may come from several store threads at once, hence the lock.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[Candidate, Camera] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def camera(self, c: Candidate) -> Camera:
        """The camera the candidate's stored fields describe (``c.doc`` must be set)."""
        with self._lock:
            camera = self._entries.get(c)
            if camera is not None:
                self._entries.move_to_end(c)
                self.hits += 1
                return camera
        assert c.doc is not None
        camera = camera_from_parts(
            c.id, c.lat, c.lon, c.heading, c.fov, c.range_m, c.sharing, c.kind, c.owner_id,
            json.loads(c.doc), status_from(c.status), c.last_frame_time)
        with self._lock:
            self.misses += 1
            self._entries[c] = camera
            if len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return camera

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


DECODED = DecodedCameras(20_000)
"""Shared by every store of the process: an entry is a pure function of its key. About 1.5 KB
each (the document text and the camera), so some 30 MB when full; a 500 m query in a dense
downtown reads about a hundred cameras."""


def _sees(c: Candidate, lat: float, lon: float) -> bool:
    return cone_contains(c.lat, c.lon, c.heading, c.fov, c.range_m, lat, lon)


def _unique(candidates: Iterable[Candidate], filters: Filters) -> list[Candidate]:
    seen: dict[str, Candidate] = {}
    for candidate in candidates:
        if candidate.id not in seen and filters.matches(candidate):
            seen[candidate.id] = candidate
    return list(seen.values())


def _rank(lat: float, lon: float, candidates: list[Candidate],
          radius_m: float) -> list[tuple[float, str, Candidate]]:
    """(distance, id, candidate) within the radius, nearest first (ties by id).

    The distances are :func:`catalog.geo.haversine_m`'s, operation for operation with the
    query point's terms computed once: the same numbers on every engine (numpy's vectorised
    sine differs from the C library's in the last bit now and then, which could swap two
    cameras at the same distance), and the same as SQLite's own ranking."""
    p1 = math.radians(lat)
    cos_p1 = math.cos(p1)
    two_r = 2.0 * EARTH_RADIUS_M
    radians, sin, cos, asin, sqrt = math.radians, math.sin, math.cos, math.asin, math.sqrt
    ranked: list[tuple[float, str, Candidate]] = []
    for c in candidates:
        p2 = radians(c.lat)
        a = sin((p2 - p1) / 2.0) ** 2 + cos_p1 * cos(p2) * sin(radians(c.lon - lon) / 2.0) ** 2
        distance = two_r * asin(min(1.0, sqrt(a)))
        if distance <= radius_m:
            ranked.append((distance, c.id, c))
    ranked.sort(key=lambda item: (item[0], item[1]))
    return ranked


def _point_hits(lat: float, lon: float, ranked: Sequence[tuple[float, str, Candidate]],
                seeing: set[str] | None, cameras: dict[str, Camera]) -> list[Hit]:
    hits = []
    for distance, camera_id, candidate in ranked:
        camera = cameras.get(camera_id)
        if camera is None:  # deleted between the index read and the record read
            continue
        sees = camera_id in seeing if seeing is not None else _sees(candidate, lat, lon)
        hits.append(Hit(camera, distance, initial_bearing_deg(lat, lon, camera.lat, camera.lon),
                        sees))
    return hits


def decoded_point_hits(lat: float, lon: float,
                       ranked: Sequence[tuple[float, str, Candidate]]) -> list[Hit]:
    """Hits for ranked candidates that carry their stored document (``doc``)."""
    return _point_hits(lat, lon, ranked, None,
                       {item[1]: DECODED.camera(item[2]) for item in ranked})


class SpatialSearch(ABC):
    """Geographic queries over an engine's candidate primitives."""

    @abstractmethod
    async def _candidates(
        self, boxes: list[Box], circles: list[Circle], filters: Filters
    ) -> list[Candidate]:
        """Every camera inside the union of ``boxes`` (or of ``circles``: an engine uses the
        form its index understands), possibly more, possibly repeated."""

    @abstractmethod
    async def _covering(self, lat: float, lon: float, filters: Filters) -> list[Candidate]:
        """Every camera whose view cone may hold the point, possibly more."""

    @abstractmethod
    async def _load(self, ids: Sequence[str]) -> dict[str, Camera]:
        """Full cameras by id (missing ids are left out)."""

    async def _compute(self, work: Callable[[], T]) -> T:
        """Run a query's answer building (decoding, distances, cones). Engines with a thread
        of their own run it there, off the event loop."""
        return work()

    async def _materialize(self, candidates: Sequence[Candidate]) -> dict[str, Camera]:
        """Full cameras for candidates: from the document the index returned, else loaded."""
        out: dict[str, Camera] = {}
        missing: list[str] = []
        for c in candidates:
            if c.doc is None:
                missing.append(c.id)
            else:
                out[c.id] = DECODED.camera(c)
        if missing:
            out.update(await self._load(missing))
        return out

    async def _nearest_candidates(
        self, lat: float, lon: float, want: int, radius_m: float, filters: Filters
    ) -> list[Candidate]:
        """A superset of the ``want`` cameras nearest to the point within ``radius_m`` that
        match the filters. This default widens a circle until it holds enough of them."""
        radius = min(radius_m, FIRST_RADIUS_M)
        while True:
            found = await self._candidates(
                circle_boxes(lat, lon, radius), [Circle(lat, lon, radius)], filters)
            inside = sum(1 for c in _unique(found, filters)
                         if haversine_m(lat, lon, c.lat, c.lon) <= radius)
            if inside >= want or radius >= radius_m:
                return found
            # Widen by the density seen so far (at least 2x) until enough cameras are inside.
            factor = math.sqrt(want / max(1, inside)) * 1.5
            radius = min(radius_m, radius * max(2.0, min(factor, 16.0)))

    async def _in_circle(
        self, lat: float, lon: float, radius_m: float, filters: Filters
    ) -> list[tuple[float, str, Candidate]]:
        found = await self._candidates(
            circle_boxes(lat, lon, radius_m), [Circle(lat, lon, radius_m)], filters
        )
        return _rank(lat, lon, _unique(found, filters), radius_m)

    async def _point_hits(
        self, lat: float, lon: float, ranked: Sequence[tuple[float, str, Candidate]],
        seeing: set[str] | None = None,
    ) -> list[Hit]:
        if all(item[2].doc is not None for item in ranked):
            return await self._compute(lambda: _point_hits(lat, lon, ranked, seeing, {
                item[1]: DECODED.camera(item[2]) for item in ranked}))
        return _point_hits(lat, lon, ranked, seeing,
                           await self._materialize([item[2] for item in ranked]))

    async def nearest(
        self,
        lat: float,
        lon: float,
        *,
        limit: int = 20,
        radius_m: float = MAX_RADIUS_M,
        filters: Filters = _NO_FILTERS,
        offset: int = 0,
    ) -> SearchResult:
        """The ``limit`` cameras closest to the point, no farther than ``radius_m``."""
        return await self._nearest_page(lat, lon, limit, offset, radius_m, filters)

    async def _nearest_page(
        self, lat: float, lon: float, limit: int, offset: int, radius_m: float,
        filters: Filters,
    ) -> SearchResult:
        """Nearest-N's answer. Engines that can rank inside their index override this."""
        want = offset + limit
        found = await self._nearest_candidates(lat, lon, want, radius_m, filters)
        ranked = _rank(lat, lon, _unique(found, filters), radius_m)
        return SearchResult(await self._point_hits(lat, lon, ranked[offset:want]))

    async def _radius_page(
        self, lat: float, lon: float, radius_m: float, filters: Filters, page: Page
    ) -> SearchResult:
        """One page of the cameras within ``radius_m``, nearest first, and how many there are.
        Engines that can rank inside their index override this (same answer, less work)."""
        ranked = await self._in_circle(lat, lon, radius_m, filters)
        window = ranked[page.offset:page.offset + page.limit]
        return SearchResult(await self._point_hits(lat, lon, window), len(ranked))

    async def within_radius(
        self, lat: float, lon: float, radius_m: float, *, filters: Filters = _NO_FILTERS,
        page: Page = _DEFAULT_PAGE,
    ) -> SearchResult:
        return await self._radius_page(lat, lon, radius_m, filters, page)

    async def can_see(
        self, lat: float, lon: float, *, near_m: float = 0.0, filters: Filters = _NO_FILTERS,
        page: Page = _DEFAULT_PAGE,
    ) -> SearchResult:
        """Cameras whose view cone holds the point (nearest first), then cameras within
        ``near_m`` that do not see it (nearest first)."""
        seeing: list[tuple[float, str, Candidate]] = []
        for c in _unique(await self._covering(lat, lon, filters), filters):
            if _sees(c, lat, lon):
                seeing.append((haversine_m(lat, lon, c.lat, c.lon), c.id, c))
        seeing.sort(key=lambda item: (item[0], item[1]))
        seeing_ids = {item[1] for item in seeing}
        near: list[tuple[float, str, Candidate]] = []
        if near_m > 0:
            near = [item for item in await self._in_circle(lat, lon, near_m, filters)
                    if item[1] not in seeing_ids]
        ranked = seeing + near
        window = ranked[page.offset:page.offset + page.limit]
        return SearchResult(await self._point_hits(lat, lon, window, seeing_ids), len(ranked))

    async def within_polygon(
        self, polygon: GeoPolygon, *, filters: Filters = _NO_FILTERS, page: Page = _DEFAULT_PAGE
    ) -> SearchResult:
        """Cameras inside the polygon, by id."""
        found = await self._candidates(polygon.boxes(), polygon.circles(), filters)
        inside = sorted((c.id, c) for c in _unique(found, filters)
                        if polygon.contains(c.lat, c.lon))
        window = inside[page.offset:page.offset + page.limit]
        cameras = await self._materialize([c for _, c in window])
        return SearchResult([Hit(cameras[i]) for i, _ in window if i in cameras], len(inside))

    async def along_route(
        self, route: GeoRoute, *, filters: Filters = _NO_FILTERS, page: Page = _DEFAULT_PAGE
    ) -> SearchResult:
        """Cameras within the route's buffer, in the order a vehicle on the route meets them."""
        found = await self._candidates(route.boxes(), route.circles(), filters)
        ranked: list[tuple[float, float, str, Candidate]] = []
        for c in _unique(found, filters):
            position = route.locate(c.lat, c.lon)
            if position.distance_m <= route.buffer_m:
                ranked.append((position.along_m, position.distance_m, c.id, c))
        ranked.sort(key=lambda item: item[:3])
        window = ranked[page.offset:page.offset + page.limit]
        cameras = await self._materialize([item[3] for item in window])
        hits = [
            Hit(cameras[camera_id], distance_m=distance, along_m=along)
            for along, distance, camera_id, _ in window
            if camera_id in cameras
        ]
        return SearchResult(hits, len(ranked))
