"""The scale-out catalog engine: Redis GEO sets and hashes through ``redis.asyncio``.

Keys (all under one prefix with a hash tag, so a Redis Cluster keeps them in one slot):

- ``attrs`` hash: camera id -> the compact fields a search ranks and filters on;
- ``cams`` hash: camera id -> the camera's other fields (JSON);
- ``status`` hash: camera id -> ``status|last_frame_time`` (absent: unknown);
- ``geo:<metres>`` GEO sets: camera positions, one set per view-range class (100, 300, 1000,
  5000 m), so "can see" asks each set only as far out as its cameras can see;
- ``polar`` set: cameras beyond latitude +-85.05, which Redis GEO cannot index;
- ``ids`` sorted set (all scores 0): ids in lexical order, for cursor paging;
- ``ent:<kind>`` hashes: owners, sites and agents.

Every write is one MULTI/EXEC transaction built only after all input was validated, so EXEC has
nothing left to refuse and a failed bulk import changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError

from catalog.errors import (
    ImportConflict,
    StoreUnavailable,
)
from catalog.geo import Box, Circle, circle_extent, haversine_m, wrap_lon
from catalog.model import Camera, CameraStatus, camera_doc, camera_from_parts, status_from
from catalog.query import Candidate, Filters
from catalog.search import FIRST_RADIUS_M
from catalog.store import EntityKind, ImportMode, StoreBase

log = logging.getLogger(__name__)
T = TypeVar("T")

RANGE_CLASSES = (100.0, 300.0, 1000.0, 5000.0)
"""Upper view range (metres) of each GEO set."""
GEO_MAX_LAT = 85.05
"""Redis GEO indexes latitudes within +-85.05112878; cameras beyond go to the polar set."""
_GEO_EXACT_LIMIT = 85.05112878
_PAD = 1.002
"""Redis measures on a slightly larger sphere and quantises positions (~0.6 m): search a bit
wider, then the exact filter in ``SpatialSearch`` decides."""
_REDIS_TO_MEAN = 6_371_008.8 / 6_372_797.560856
"""Redis GEO distances use a sphere of radius 6372797.56 m; ours, the mean radius."""
_NO_FILTERS = Filters()
_RANK_SLACK_M = 1.0
"""Extra metres kept beyond the nearest-N cut, on top of the two 2 m error bounds."""
_LOST = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)
_BATCH = 1000
_TIMEOUT_S = 5.0
"""Deadline of a read or a small write."""
MAX_CONNECTIONS = 100
"""Connections to Redis per process; more operations at once wait for one to be free."""
_POOL_WAIT_S = 4.0
"""Longest wait for a free connection (below ``_TIMEOUT_S``, so the pool's error is the one
reported when it is the bottleneck)."""
_BACKSTOP_S = 300.0
_IMPORT_RATE = 5000.0
"""Cameras per second a bulk write is given at least (on top of _TIMEOUT_S)."""
_SET_STATUS = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
local lft = ARGV[3]
if lft == '' then
  local old = redis.call('HGET', KEYS[2], ARGV[1])
  if old then lft = string.match(old, '|(.*)$') or '' end
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. '|' .. lft)
return 1
"""

_SEARCH = """
-- KEYS: the GEO sets, then attrs, status, cams and polar.
-- ARGV: the number of searches; per search: GEO set number, lon, lat, radius (m), COUNT (0:
-- all, unsorted); then want (0: every id), factor to our sphere, the radius every camera
-- within which must be found, and 1 to add the polar set.
local searches = tonumber(ARGV[1])
local sets = #KEYS - 4
local base = 2 + searches * 5
local want = tonumber(ARGV[base])
local factor = tonumber(ARGV[base + 1])
local sure = tonumber(ARGV[base + 2])
local replies, measured, seen, ids = {}, {}, {}, {}
for s = 0, searches - 1 do
  local a = 2 + s * 5
  local count = tonumber(ARGV[a + 4])
  local key = KEYS[tonumber(ARGV[a])]
  local found
  if count > 0 then
    found = redis.call('GEOSEARCH', key, 'FROMLONLAT', ARGV[a + 1], ARGV[a + 2],
                       'BYRADIUS', ARGV[a + 3], 'm', 'ASC', 'COUNT', count, 'WITHDIST')
    local flat = {}
    for _, item in ipairs(found) do
      flat[#flat + 1] = item[1]
      flat[#flat + 1] = item[2]
      measured[#measured + 1] = {tonumber(item[2]) * factor, item[1]}
      if not seen[item[1]] then seen[item[1]] = true; ids[#ids + 1] = item[1] end
    end
    if #found >= count then
      sure = math.min(sure, tonumber(found[#found][2]) * factor - 2.0)
    end
    replies[#replies + 1] = flat
  else
    found = redis.call('GEOSEARCH', key, 'FROMLONLAT', ARGV[a + 1], ARGV[a + 2],
                       'BYRADIUS', ARGV[a + 3], 'm')
    for _, id in ipairs(found) do
      if not seen[id] then seen[id] = true; ids[#ids + 1] = id end
    end
    replies[#replies + 1] = found
  end
end
local polar = {}
if ARGV[base + 3] == '1' then
  polar = redis.call('SMEMBERS', KEYS[sets + 4])
  for _, id in ipairs(polar) do
    if not seen[id] then seen[id] = true; ids[#ids + 1] = id end
  end
  want = 0
end
if want > 0 and #measured >= want then
  table.sort(measured, function(x, y) return x[1] < y[1] end)
  local limit = measured[want][1] + ARGV[base + 4]
  if limit <= sure then
    ids = {}
    seen = {}
    for _, item in ipairs(measured) do
      if item[1] <= limit and not seen[item[2]] then
        seen[item[2]] = true
        ids[#ids + 1] = item[2]
      end
    end
  end
end
local out = {replies, ids, {}, {}, {}, polar}
for start = 1, #ids, 1000 do  -- unpack has a stack limit
  local part = {unpack(ids, start, math.min(#ids, start + 999))}
  for k = 1, 3 do
    local values = redis.call('HMGET', KEYS[sets + k], unpack(part))
    for _, v in ipairs(values) do out[k + 2][#out[k + 2] + 1] = v end
  end
end
return out
"""
"""Every GEOSEARCH of one query and the records of the cameras found, in one round trip (on a
busy machine each round trip costs the caller a wake-up of the server and back). For nearest-N
without filters only the ids that may rank are read: Redis's distance is within 2 m of ours, so
a camera farther than the N-th by more than twice that (plus slack) cannot rank before it; that
cut is used only when everything within it was found (``sure``)."""


@contextlib.asynccontextmanager
async def _deadline(seconds: float = _TIMEOUT_S) -> AsyncIterator[None]:
    """A deadline for one operation; its expiry, and a pool that stayed full, become
    ``StoreUnavailable`` errors naming Redis (the API answers 503)."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise StoreUnavailable(
            f"Redis did not answer the catalog within {seconds:.0f} s (overloaded or "
            "unreachable); try again shortly") from None
    except RedisConnectionError as exc:
        if "No connection available" not in str(exc):
            raise
        raise StoreUnavailable(
            "every connection to Redis stayed busy for as long as a caller may wait; the catalog "
            "is overloaded: try again shortly, or raise the connection limit") from exc


async def _bounded(call: Awaitable[T], seconds: float = _TIMEOUT_S) -> T:
    async with _deadline(seconds):
        return await call


def range_class(range_m: float) -> float:
    for limit in RANGE_CLASSES:
        if range_m <= limit:
            return limit
    return RANGE_CLASSES[-1]


def _attrs(camera: Camera) -> str:
    return "|".join((repr(camera.lat), repr(camera.lon), repr(camera.heading), repr(camera.fov),
                     repr(camera.range_m), str(camera.sharing), str(camera.kind),
                     camera.owner_id))


def _candidate(camera_id: str, attrs: str, status: str | None,
               doc: str | None = None) -> Candidate:
    lat, lon, heading, fov, range_m, sharing, kind, owner = attrs.split("|", 7)
    state, _, lft = status.partition("|") if status else ("unknown", "", "")
    return Candidate(camera_id, float(lat), float(lon), float(heading), float(fov),
                     float(range_m), sharing, kind, owner, state, doc,
                     float(lft) if lft else None)


def _status(value: str | None) -> tuple[CameraStatus, float | None]:
    if not value:
        return CameraStatus.UNKNOWN, None
    status, _, lft = value.partition("|")
    return status_from(status), float(lft) if lft else None


@dataclass(frozen=True, slots=True)
class _Encoded:
    """Up to _BATCH cameras ready to be written."""

    ids: list[str]
    docs: dict[str, str]
    attrs: dict[str, str]
    by_class: dict[float, list[Any]]
    polar: list[str]


def _encode(cameras: Sequence[Camera]) -> list[_Encoded]:
    out: list[_Encoded] = []
    for start in range(0, len(cameras), _BATCH):
        chunk = cameras[start:start + _BATCH]
        by_class: dict[float, list[Any]] = {}
        polar: list[str] = []
        for c in chunk:
            if abs(c.lat) > GEO_MAX_LAT:
                polar.append(c.id)
            else:
                by_class.setdefault(range_class(c.range_m), []).extend((c.lon, c.lat, c.id))
        out.append(_Encoded(
            ids=[c.id for c in chunk],
            docs={c.id: camera_doc(c) for c in chunk},
            attrs={c.id: _attrs(c) for c in chunk},
            by_class=by_class,
            polar=polar,
        ))
    return out


class RedisCatalog(StoreBase):
    engine = "redis"

    def __init__(self, client: aioredis.Redis, prefix: str = "rtcc:{catalog}:",
                 *, owns_client: bool = True) -> None:
        self.client = client
        self.prefix = prefix
        self._owns_client = owns_client
        self._cams = prefix + "cams"
        self._attrs_key = prefix + "attrs"
        self._status_key = prefix + "status"
        self._polar = prefix + "polar"
        self._ids = prefix + "ids"
        self._geo = {limit: f"{prefix}geo:{int(limit)}" for limit in RANGE_CLASSES}
        self._set_status = client.register_script(_SET_STATUS)
        self._search_script = client.register_script(_SEARCH)
        self._geo_number = {key: n for n, key in enumerate(self._geo.values(), start=1)}
        self._search_keys = [*self._geo.values(), self._attrs_key, self._status_key, self._cams,
                             self._polar]
        self._closed = False

    @property
    def events_channel(self) -> str:
        return self.prefix + "events"

    @classmethod
    async def open(cls, url: str, prefix: str = "rtcc:{catalog}:",
                   max_connections: int = MAX_CONNECTIONS,
                   pool_wait_s: float = _POOL_WAIT_S) -> RedisCatalog:
        # A burst of searches beyond ``max_connections`` waits for a free connection (up to
        # _POOL_WAIT_S) instead of failing at once as the default pool does.
        pool = aioredis.BlockingConnectionPool.from_url(
            # Each operation has its own deadline (asyncio.timeout); a bulk import may take
            # longer than a lookup, so the socket's own timeout is only a backstop.
            url, decode_responses=True, socket_timeout=_BACKSTOP_S,
            socket_connect_timeout=_TIMEOUT_S, health_check_interval=30,
            max_connections=max_connections, timeout=pool_wait_s,
        )
        client = aioredis.Redis.from_pool(pool)
        try:
            await client.ping()
        except BaseException:
            await client.aclose()
            raise
        log.info("catalog: Redis store opened (prefix %s)", prefix)
        return cls(client, prefix)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self.client.aclose()

    # -- writes ---------------------------------------------------------------------------------

    def _queue_write(self, pipe: Any, chunks: Sequence[_Encoded], existing: set[str]) -> None:
        """Queue the commands that store encoded cameras (replacing the index entries of the
        ``existing`` ones)."""
        for chunk in chunks:
            pipe.hset(self._cams, mapping=chunk.docs)
            pipe.hset(self._attrs_key, mapping=chunk.attrs)
            replaced = [i for i in chunk.ids if i in existing]
            if replaced:
                for key in self._geo.values():
                    pipe.zrem(key, *replaced)
                pipe.srem(self._polar, *replaced)
            for limit, values in chunk.by_class.items():
                pipe.geoadd(self._geo[limit], values)
            if chunk.polar:
                pipe.sadd(self._polar, *chunk.polar)
            pipe.zadd(self._ids, dict.fromkeys(chunk.ids, 0))

    async def _write_cameras(self, cameras: Sequence[Camera], mode: ImportMode) -> int:
        """Write all cameras in one MULTI/EXEC; returns how many existed before."""
        if len(cameras) > _BATCH:  # keep the event loop free while a large import is encoded
            chunks = await asyncio.to_thread(_encode, cameras)
        else:
            chunks = _encode(cameras)
        budget = _TIMEOUT_S + len(cameras) / _IMPORT_RATE
        for _attempt in range(5):
            try:
                async with asyncio.timeout(budget):
                    return await self._try_transaction(chunks, [c.id for c in cameras], mode)
            except WatchError as exc:
                if isinstance(exc.__context__, _LOST):
                    # The connection died during EXEC: the write may or may not have happened.
                    raise StoreUnavailable(
                        "the connection to Redis was lost while writing; the write may have "
                        "happened: read the cameras back before trying again") from exc
                continue  # another writer changed the catalog between WATCH and EXEC
            except TimeoutError:
                raise StoreUnavailable(
                    f"Redis did not confirm the write within {budget:.0f} s; it may have "
                    "happened: read the cameras back before trying again") from None
        raise RuntimeError("the catalog was changed concurrently too often; try again")

    async def _try_transaction(
        self, chunks: Sequence[_Encoded], ids: Sequence[str], mode: ImportMode
    ) -> int:
        async with self.client.pipeline(transaction=True) as pipe:
            await pipe.watch(self._attrs_key)
            existing: list[str] = []
            for start in range(0, len(ids), _BATCH):
                part = list(ids[start:start + _BATCH])
                found = await pipe.hmget(self._attrs_key, part)
                existing += [i for i, f in zip(part, found, strict=True) if f is not None]
            if existing and mode == "create":
                await pipe.unwatch()  # type: ignore[no-untyped-call]
                raise ImportConflict(sorted(existing))
            pipe.multi()  # type: ignore[no-untyped-call]
            self._queue_write(pipe, chunks, set(existing))
            await pipe.execute()
            return len(existing)

    async def delete(self, camera_id: str) -> bool:
        async with _deadline(), self.client.pipeline(transaction=True) as pipe:
            pipe.hdel(self._cams, camera_id)
            pipe.hdel(self._attrs_key, camera_id)
            pipe.hdel(self._status_key, camera_id)
            for key in self._geo.values():
                pipe.zrem(key, camera_id)
            pipe.srem(self._polar, camera_id)
            pipe.zrem(self._ids, camera_id)
            results = await pipe.execute()
        return bool(results[0])

    async def set_status(
        self, camera_id: str, status: CameraStatus, last_frame_time: float | None
    ) -> bool:
        lft = repr(last_frame_time) if last_frame_time is not None else ""
        result = await _bounded(self._set_status(keys=[self._cams, self._status_key],
                                                 args=[camera_id, str(status), lft]))
        return bool(result)

    # -- reads ----------------------------------------------------------------------------------

    async def get(self, camera_id: str) -> Camera | None:
        return (await self._load([camera_id])).get(camera_id)

    async def _load(self, ids: Sequence[str]) -> dict[str, Camera]:
        if not ids:
            return {}
        async with _deadline(), self.client.pipeline(transaction=False) as pipe:
            pipe.hmget(self._attrs_key, list(ids))
            pipe.hmget(self._cams, list(ids))
            pipe.hmget(self._status_key, list(ids))
            attrs, docs, statuses = await pipe.execute()
        out: dict[str, Camera] = {}
        for camera_id, attr, doc, status in zip(ids, attrs, docs, statuses, strict=True):
            if attr is not None and doc is not None:
                c = _candidate(camera_id, attr, None)
                out[camera_id] = camera_from_parts(
                    camera_id, c.lat, c.lon, c.heading, c.fov, c.range_m, c.sharing, c.kind,
                    c.owner_id, json.loads(doc), *_status(status))
        return out

    async def count(self) -> int:
        return int(await _bounded(self.client.hlen(self._cams)))

    async def list_cameras(
        self, filters: Filters = Filters(), *, after: str = "", limit: int = 100  # noqa: B008
    ) -> list[Camera]:
        out: list[Camera] = []
        cursor = f"({after}" if after else "-"
        step = max(limit, 200)
        while len(out) < limit:
            ids = cast(list[str], await _bounded(
                self.client.zrangebylex(self._ids, cursor, "+", 0, step)))
            if not ids:
                break
            cameras = await self._load(ids)
            for camera_id in ids:
                camera = cameras.get(camera_id)
                if camera is not None and filters.matches_camera(camera):
                    out.append(camera)
                    if len(out) == limit:
                        break
            if len(ids) < step:
                break
            cursor = f"({ids[-1]}"
        return out

    def _circle_args(self, key: str, circle: Circle, count: int = 0) -> tuple[list[Any], bool]:
        """A GEOSEARCH covering the circle (the ``count`` nearest, with their distances, when
        given) as ``_SEARCH`` arguments; True when the circle reaches the polar caps."""
        lat = max(-_GEO_EXACT_LIMIT, min(_GEO_EXACT_LIMIT, circle.lat))
        radius = circle.radius_m + haversine_m(lat, circle.lon, circle.lat, circle.lon)
        # Redis does not wrap a search centred on exactly +180 (it does from -180).
        args = [self._geo_number[key], repr(wrap_lon(circle.lon)), repr(lat),
                repr(radius * _PAD + 2.0), count]
        min_lat, max_lat, _, _ = circle_extent(circle.lat, circle.lon, circle.radius_m)
        return args, max_lat > GEO_MAX_LAT - 0.01 or min_lat < -GEO_MAX_LAT + 0.01

    async def _run_search(
        self, searches: Sequence[tuple[str, Circle, int]], want: int = 0, sure: float = 0.0
    ) -> tuple[list[list[Any]], list[Candidate], bool]:
        """(each search's reply, the candidates read, whether the polar set was added)."""
        args: list[Any] = [len(searches)]
        polar = False
        for key, circle, count in searches:
            more, near_pole = self._circle_args(key, circle, count)
            args += more
            polar = polar or near_pole
        args += [want, repr(_REDIS_TO_MEAN), repr(sure), 1 if polar else 0,
                 repr(4.0 + _RANK_SLACK_M)]
        replies, ids, attrs, statuses, docs, _ = await _bounded(
            self._search_script(keys=self._search_keys, args=args))
        candidates = [_candidate(i, a, st, d)
                      for i, a, st, d in zip(ids, attrs, statuses, docs, strict=True)
                      if a is not None and d is not None]
        return replies, candidates, polar

    async def _search(self, searches: Sequence[tuple[str, Circle]]) -> list[Candidate]:
        _, candidates, _ = await self._run_search([(key, c, 0) for key, c in searches])
        return candidates

    async def _candidates(
        self, boxes: list[Box], circles: list[Circle], filters: Filters
    ) -> list[Candidate]:
        return await self._search([(key, c) for c in circles for key in self._geo.values()])

    async def _covering(self, lat: float, lon: float, filters: Filters) -> list[Candidate]:
        return await self._search(
            [(key, Circle(lat, lon, limit)) for limit, key in self._geo.items()])

    async def _nearest_candidates(
        self, lat: float, lon: float, want: int, radius_m: float, filters: Filters
    ) -> list[Candidate]:
        """GEOSEARCH ... COUNT k ASC in every range class inside a circle that widens (and k
        that grows) until the ``want`` nearest matching cameras are certainly among the
        results. Redis sorts everything inside the circle, so the circle starts small. One
        round trip per circle (``_SEARCH``), which also reads the records."""
        radius = min(radius_m, FIRST_RADIUS_M)
        count = 2 * want + 10
        unfiltered = filters == _NO_FILTERS
        while True:
            classes, candidates, polar = await self._run_search(
                [(key, Circle(lat, lon, radius), count) for key in self._geo.values()],
                want if unfiltered else 0, radius)
            pairs = [list(zip(found[::2], found[1::2], strict=True)) for found in classes]
            # Every camera within the radius is here, except beyond the k-th of a full class
            # (Redis measures on a larger sphere from positions quantised to ~0.6 m: convert,
            # keep 2 m of margin).
            full = [found for found in pairs if len(found) >= count]
            sure = min([radius] + [float(found[-1][1]) * _REDIS_TO_MEAN - 2.0 for found in full])
            if unfiltered and not polar:
                inside = sum(1 for found in pairs for item in found
                             if float(item[1]) * _REDIS_TO_MEAN <= sure)
            else:
                inside = sum(1 for c in candidates if filters.matches(c)
                             and haversine_m(lat, lon, c.lat, c.lon) <= sure)
            complete = sure >= radius  # every camera within the radius is here
            if inside >= want or (radius >= radius_m and complete):
                return candidates
            if not complete:
                count *= 4
            else:
                grow = math.sqrt(want / max(1, inside)) * 1.5
                radius = min(radius_m, radius * max(2.0, min(16.0, grow)))

    # -- documents (owners, sites, agents) -------------------------------------------------------

    def _doc_key(self, kind: EntityKind) -> str:
        return f"{self.prefix}ent:{kind}"

    async def _put_doc(self, kind: EntityKind, doc_id: str, doc: Mapping[str, Any]) -> None:
        await _bounded(self.client.hset(self._doc_key(kind), doc_id, json.dumps(doc)))

    async def _get_doc(self, kind: EntityKind, doc_id: str) -> dict[str, Any] | None:
        text = await _bounded(self.client.hget(self._doc_key(kind), doc_id))
        return cast(dict[str, Any], json.loads(text)) if text is not None else None

    async def _list_docs(self, kind: EntityKind) -> list[dict[str, Any]]:
        docs = await _bounded(self.client.hgetall(self._doc_key(kind)))
        return [json.loads(docs[k]) for k in sorted(docs)]

    async def _delete_doc(self, kind: EntityKind, doc_id: str) -> bool:
        return bool(await _bounded(self.client.hdel(self._doc_key(kind), doc_id)))
