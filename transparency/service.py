"""The published data, computed off the event loop and kept ready to serve.

``refresh()`` reads the sources (each store on its own thread), then builds everything the
public routes serve (the published incidents, the metrics, the program numbers and the bytes of
every open data file) in a worker thread, and swaps the new ``Snapshot`` in at once. A request
only picks bytes out of the current snapshot: no database, no computation, nothing on the live
video path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from rtcc.errors import StoreUnavailable
from rtcc.public_data import AuditCounts, CadHistory, CadRecord, CameraCensus, CameraPoint
from rtcc.transparency_config import TransparencyConfig
from transparency import opendata
from transparency.districts import district_of
from transparency.metrics import MetricRow, created, response_metrics
from transparency.policy import PublishedIncident, SourceIncident, public_id, publish
from transparency.program import ACTIONS, ProgramNumbers, program_numbers
from transparency.records import ReportedCrime
from transparency.store import RecordsStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class File:
    body: bytes
    content_type: str
    etag: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: int
    generated_at: str
    incidents: list[PublishedIncident]
    metrics: list[MetricRow]
    program: ProgramNumbers
    cad_count: int
    """CAD incidents in the window, before the policy (for the page's "what is not shown")."""
    files: dict[str, File] = field(default_factory=dict)


def _file(body: bytes, content_type: str) -> File:
    return File(body, content_type, '"' + hashlib.sha256(body).hexdigest()[:20] + '"')


def cad_to_source(record: CadRecord) -> SourceIncident | None:
    begin = created(record)
    if begin is None or not record.type_code:
        return None
    return SourceIncident("cad", record.incident_id, record.type_code, begin, record.lat,
                          record.lon, record.address)


def crime_to_source(crime: ReportedCrime) -> SourceIncident:
    return SourceIncident("records", crime.case_number, crime.nibrs_code, crime.occurred_at,
                          crime.lat, crime.lon, crime.address)


def build_snapshot(version: int, config: TransparencyConfig, now: datetime,
                   cad: list[CadRecord], crimes: list[ReportedCrime],
                   cameras: list[CameraPoint],
                   counts: dict[str, dict[str, int]] | None) -> Snapshot:
    """Everything the public routes serve; pure and CPU-bound (run it in a thread)."""
    earliest = now - timedelta(days=config.window_days)
    in_window = [r for r in cad if (c := created(r)) is not None and c >= earliest]
    sources = [s for s in map(cad_to_source, in_window) if s is not None]
    sources += [crime_to_source(c) for c in crimes]
    where = {(s.source, s.incident_id): (s.lat, s.lon) for s in sources}
    published = publish(sources, config, now)
    by_id = {p.id: p for p in published}
    # The district comes from the true point (districts are far larger than the grid).
    districts = {public_id(src, iid): district_of(config.districts, *point)
                 for (src, iid), point in where.items()} if config.districts else {}
    published = [dataclasses.replace(p, district=districts.get(p.id)) for p in by_id.values()]
    published.sort(key=lambda p: (p.occurred_hour, p.id), reverse=True)
    metrics = response_metrics(in_window, config.districts)
    program = program_numbers(cameras, counts, config.districts)
    stamp = now.isoformat()
    files = {
        "incidents.json": _file(opendata.incidents_json(published, stamp), "application/json"),
        "incidents.geojson": _file(opendata.incidents_geojson(published, stamp),
                                   "application/geo+json"),
        "incidents.csv": _file(opendata.incidents_csv(published), "text/csv"),
        "metrics.json": _file(opendata.metrics_json(metrics, stamp), "application/json"),
        "metrics.csv": _file(opendata.metrics_csv(metrics), "text/csv"),
        "program.json": _file(opendata.program_json(program, stamp), "application/json"),
    }
    return Snapshot(version, stamp, published, metrics, program, len(in_window), files)


class TransparencyService:
    """Holds the current snapshot; ``run()`` refreshes it every ``refresh_seconds``."""

    def __init__(self, config: TransparencyConfig, records: RecordsStore, cad: CadHistory,
                 cameras: CameraCensus | None = None, audit: AuditCounts | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.records = records
        self._cad = cad
        self._cameras = cameras
        self._audit = audit
        self._clock = clock
        self._version = 0
        self._lock = asyncio.Lock()
        self.snapshot = build_snapshot(0, config, self.now(), [], [], [], None)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    async def refresh(self) -> Snapshot:
        async with self._lock:  # one refresh at a time; a second caller gets its result
            now = self.now()
            earliest = now - timedelta(days=self.config.window_days)
            cad = await self._cad.cad_records()
            crimes = await self.records.crimes_since(earliest)
            cameras = await self._cameras.camera_points() if self._cameras is not None else []
            counts: dict[str, dict[str, int]] | None = None
            if self._audit is not None:
                try:
                    counts = await self._audit.monthly_counts(ACTIONS, earliest.timestamp())
                except StoreUnavailable as exc:
                    log.warning("transparency: audit counts unavailable, shown as such: %s", exc)
            self._version += 1
            self.snapshot = await asyncio.to_thread(
                build_snapshot, self._version, self.config, now, cad, crimes, cameras, counts)
            log.info("transparency: published %d incidents, %d metric rows (version %d)",
                     len(self.snapshot.incidents), len(self.snapshot.metrics), self._version)
            return self.snapshot

    async def run(self) -> None:
        """Refresh now and then every ``refresh_seconds`` (a TaskSupervisor task)."""
        while True:
            try:
                await self.refresh()
            except StoreUnavailable as exc:
                log.warning("transparency: refresh failed, the last data stays published: %s",
                            exc)
            await asyncio.sleep(self.config.refresh_seconds)

    async def import_records(self, crimes: list[ReportedCrime]) -> int:
        stored = await self.records.import_crimes(crimes)
        await self.refresh()
        return stored
