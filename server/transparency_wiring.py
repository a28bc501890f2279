"""Wiring the public transparency pages to the stores they read: CAD incidents, the camera
catalog and the audit log, each through a read-only contract of ``rtcc.public_data``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiohttp import web

from catalog.keys import CATALOG_STORE
from catalog.store import CatalogStore
from incidents.routes import INCIDENT_SERVICE
from incidents.store import CadIncident, IncidentStore
from rtcc.appkeys import CLOCK, DATABASE, SETTINGS
from rtcc.db import SqlConnection
from rtcc.public_data import CadRecord, CameraPoint
from rtcc.tasks import TaskSupervisor
from security.audit import AuditLog, AuditWriter
from security.core import SECURITY
from transparency.keys import TRANSPARENCY
from transparency.service import TransparencyService
from transparency.store import RecordsStore

log = logging.getLogger(__name__)


def cad_record(incident: CadIncident) -> CadRecord:
    point = incident.point()
    times = incident.update.times
    address = (incident.location or {}).get("address")
    return CadRecord(
        incident_id=incident.tracking_id, type_code=incident.type_code,
        type_text=incident.type_text, priority=incident.priority,
        lat=None if point is None else point[0], lon=None if point is None else point[1],
        address=address if isinstance(address, str) else None,
        call_received=times.call_received, entered=times.entered, dispatched=times.dispatched,
        en_route=times.en_route, on_scene=times.on_scene, cleared=times.cleared)


class StoreCadHistory:
    def __init__(self, store: IncidentStore) -> None:
        self._store = store

    async def cad_records(self) -> list[CadRecord]:
        incidents = await self._store.all_incidents()
        # Tens of thousands of incidents in a window: converted off the event loop.
        return await asyncio.to_thread(lambda: [cad_record(i) for i in incidents])


class CatalogCensus:
    def __init__(self, store: CatalogStore) -> None:
        self._store = store

    async def camera_points(self) -> list[CameraPoint]:
        return [CameraPoint(str(c.sharing), c.lat, c.lon)
                async for c in self._store.iter_cameras()]


def _monthly(conn: SqlConnection, actions: Sequence[str], since_ms: int
             ) -> dict[str, dict[str, int]]:
    month = ("strftime('%Y-%m', ts_ms / 1000, 'unixepoch')" if conn.dialect == "sqlite"
             else "to_char(to_timestamp(ts_ms / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM')")
    marks = ", ".join("?" for _ in actions)
    rows = conn.fetchall(
        f"SELECT action, {month} AS month, COUNT(*) AS n FROM audit"  # noqa: S608 (fixed text)
        f" WHERE action IN ({marks}) AND outcome = 'ok' AND ts_ms >= ?"
        " GROUP BY action, month ORDER BY action, month", (*actions, since_ms))
    out: dict[str, dict[str, int]] = {action: {} for action in actions}
    for row in rows:
        out[row["action"]][row["month"]] = int(row["n"])
    return out


class AuditLogCounts:
    """Counts read on the security store's thread, after the writes queued before them."""

    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit

    async def monthly_counts(self, actions: Sequence[str],
                             since: float) -> dict[str, dict[str, int]]:
        def count(writer: AuditWriter) -> dict[str, dict[str, int]]:
            return _monthly(writer.conn, actions, int(since * 1000))

        return await self._audit.run_with_writer(count)


async def transparency_context(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: after the incidents, catalog and security contexts."""
    settings = app[SETTINGS]
    clock: Any = app.get(CLOCK, time.time)
    records = await RecordsStore.open(app[DATABASE], clock)
    tasks = TaskSupervisor("transparency")
    try:
        service = TransparencyService(
            settings.transparency, records, StoreCadHistory(app[INCIDENT_SERVICE].store),
            cameras=CatalogCensus(app[CATALOG_STORE]),
            audit=AuditLogCounts(app[SECURITY].audit), clock=clock)
        app[TRANSPARENCY] = service
        tasks.start("transparency:refresh", service.run)
        yield
    finally:
        await tasks.aclose()
        await records.aclose()
