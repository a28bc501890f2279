"""The CAD incidents service: reads feeds, places incidents on the map, stores them, tells
listeners.

Every feed (EIDO POST, STA-024 events, the CSV/JSON webhook) ends in ``ingest``: each update's
location is resolved (a civic address geocoded against the address points, a reference fetched
from a configured LIS host, else ``unknown`` with the reason), the update is merged and stored
in one transaction, and only then are the board's streams and the change hooks (emergency
access, wired by the server) told. The caller acknowledges the sender after ``ingest`` returns,
so whatever was acknowledged is stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from incidents.eido import EidoError, parse_eido
from incidents.field_map import FieldMap
from incidents.geocode import AddressIndex, load_address_points
from incidents.lis import LisError, fetch_reference
from incidents.model import CivicLocation, IncidentUpdate, ReferenceLocation
from incidents.store import CadIncident, IncidentStore, UpsertResult, location_json
from rtcc.config import IncidentsConfig

log = logging.getLogger(__name__)

QUEUE_SIZE = 256
"""Changes buffered per board stream; a stream that falls this far behind is ended (the
console reconnects and reloads the list)."""

ChangeHook = Callable[[CadIncident, UpsertResult | None], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Ingested:
    results: list[UpsertResult]

    def as_json(self) -> dict[str, Any]:
        return {"accepted": [{"id": r.incident.tracking_id, "outcome": r.outcome,
                              "security_incident_id": r.incident.security_incident_id}
                             for r in self.results]}


class BoardFeed:
    """One board stream's queue of changed incidents; ``None`` ends it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[CadIncident | None] = asyncio.Queue(QUEUE_SIZE)
        self.overflowed = False

    def put(self, incident: CadIncident | None) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(incident)
        except asyncio.QueueFull:
            self.overflowed = True
            self.queue.get_nowait()
            self.queue.put_nowait(None)  # end this stream; the console reloads


class IncidentService:
    def __init__(self, store: IncidentStore, config: IncidentsConfig, *,
                 allow_networks: tuple[str, ...] = (), lis_ssl: Any = True) -> None:
        self.store = store
        self.config = config
        self.addresses: AddressIndex | None = None
        self.field_map: FieldMap | None = None
        """How the CSV/JSON webhook's records map onto updates (None: no webhook)."""
        self.hooks: list[ChangeHook] = []
        self._feeds: set[BoardFeed] = set()
        self._allow_networks = allow_networks
        self._lis_ssl = lis_ssl
        self._lock = asyncio.Lock()

    async def load_addresses(self) -> None:
        """Read the address points file (off the event loop)."""
        path = self.config.address_points
        if path is not None:
            self.addresses = await asyncio.to_thread(load_address_points, path)
            log.info("incidents: %d address points from %s", len(self.addresses), path)

    # -- board streams ----------------------------------------------------------------------

    def subscribe(self) -> BoardFeed:
        feed = BoardFeed()
        self._feeds.add(feed)
        return feed

    def unsubscribe(self, feed: BoardFeed) -> None:
        self._feeds.discard(feed)

    def close_feeds(self) -> None:
        for feed in list(self._feeds):
            feed.put(None)

    async def notify(self, incident: CadIncident, result: UpsertResult | None = None) -> None:
        """Tell the hooks, then the board streams, that ``incident`` changed (hooks first: the
        board then shows the cameras the hooks unlocked)."""
        for hook in self.hooks:
            try:
                await hook(incident, result)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("incident %s: a change hook failed", incident.tracking_id)
        for feed in list(self._feeds):
            feed.put(incident)

    # -- feeds -------------------------------------------------------------------------------

    async def resolve_location(self, update: IncidentUpdate) -> dict[str, Any] | None:
        """The board's location for ``update.location``."""
        location = update.location
        if location is None:
            if update.location_problems:
                return {"kind": "unknown", "address": "",
                        "reason": "; ".join(str(p) for p in update.location_problems)[:500]}
            return None
        if isinstance(location, CivicLocation):
            if self.addresses is None:
                return {"kind": "unknown", "address": location.text,
                        "reason": "no address points are configured (incidents.address_points)"}
            found = await asyncio.to_thread(self.addresses.geocode, location)
            if found.point is None:
                return {"kind": "unknown", "address": location.text, "reason": found.reason}
            return {"kind": "point", "lat": found.point.lat, "lon": found.point.lon,
                    "radius_m": None, "shape": "address", "address": location.text,
                    "geocoded": {"label": found.point.label, "score": found.score}}
        if isinstance(location, ReferenceLocation):
            try:
                fetched = await fetch_reference(location.url, self.config.lis_hosts,
                                                allow_networks=self._allow_networks,
                                                ssl=self._lis_ssl)
            except LisError as exc:
                return {"kind": "unknown", "address": "", "reference": location.url[:300],
                        "reason": str(exc)}
            return await self.resolve_location(
                IncidentUpdate(update.tracking_id, update.updated_at, location=fetched))
        return location_json(location)

    async def ingest(self, updates: list[IncidentUpdate], raws: list[str],
                     sender: str) -> Ingested:
        results: list[UpsertResult] = []
        # One at a time: an incident's updates are merged in the order they arrived.
        async with self._lock:
            for update, raw in zip(updates, raws, strict=True):
                location = await self.resolve_location(update)
                results.append(await self.store.upsert(update, location=location, raw=raw,
                                                       sender=sender))
        for result in results:
            if result.changed:
                await self.notify(result.incident, result)
        return Ingested(results)

    async def ingest_eido(self, body: bytes, sender: str, *,
                          strict_locations: bool = False) -> Ingested:
        """Parse (raises EidoError listing every problem) and store an EIDO body. With
        ``strict_locations`` a location that cannot be read refuses the whole body (the sender
        is told which field and can send it again); otherwise the update is stored with its
        location unknown and the reason."""
        updates = await asyncio.to_thread(parse_eido, body, max_bytes=self.config.max_body_bytes)
        if strict_locations:
            problems = [p for u in updates for p in u.location_problems]
            if problems:
                raise EidoError(problems)
        return await self.ingest(updates, raw_documents(body, len(updates)), sender)

    async def handle_sta024(self, eido: dict[str, Any]) -> None:
        """The STA-024 subscriber's handler: raising means not stored (answered with an error)."""
        body = json.dumps(eido).encode()
        await self.ingest_eido(body, "sta024")


def raw_documents(body: bytes, count: int) -> list[str]:
    """Each document's raw JSON: the elements of an array body, or the body itself."""
    text = body.decode("utf-8-sig", "replace")
    if count != 1:
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and len(parsed) == count:
            return [json.dumps(item) for item in parsed]
        return [text] * count
    return [text]
