"""Reported crimes imported from the records system, on the data layer (``transparency``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from rtcc.db import Database, Migration, StoreSchema
from rtcc.db.store import TableStore
from transparency.records import ReportedCrime

_SQLITE = """
CREATE TABLE IF NOT EXISTS reported_crimes (
    case_number TEXT PRIMARY KEY,
    nibrs_code TEXT NOT NULL,
    offense TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    occurred_ms INTEGER NOT NULL,
    lat REAL,
    lon REAL,
    address TEXT,
    imported_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS reported_crimes_time ON reported_crimes (occurred_ms);
"""

_POSTGRESQL = """
CREATE TABLE IF NOT EXISTS reported_crimes (
    case_number TEXT PRIMARY KEY,
    nibrs_code TEXT NOT NULL,
    offense TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    occurred_ms BIGINT NOT NULL,
    lat DOUBLE PRECISION,
    lon DOUBLE PRECISION,
    address TEXT,
    imported_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS reported_crimes_time ON reported_crimes (occurred_ms);
"""

SCHEMA = StoreSchema(
    name="transparency",
    migrations=(Migration(1, "reported crimes imported from the records system",
                          sqlite=_SQLITE, postgresql=_POSTGRESQL),),
    tables=("reported_crimes",),
    sqlite_file="transparency.sqlite3",
)


class RecordsStore(TableStore):
    """The reported crimes; SQL on the store's own thread."""

    def __init__(self, database: Database, clock: Callable[[], float] = time.time) -> None:
        super().__init__(database, SCHEMA)
        self._clock = clock

    @classmethod
    async def open(cls, database: Database,
                   clock: Callable[[], float] = time.time) -> RecordsStore:
        store = cls(database, clock)
        await store.open_tables()
        return store

    async def import_crimes(self, crimes: list[ReportedCrime]) -> int:
        """Insert or replace (by case number) every crime in one transaction."""
        return await self.run(self._import, crimes)

    async def crimes_since(self, since: datetime) -> list[ReportedCrime]:
        return await self.run(self._since, since)

    def _import(self, crimes: list[ReportedCrime]) -> int:
        now = float(self._clock())
        with self.conn.transaction() as tx:
            tx.executemany(
                "INSERT INTO reported_crimes (case_number, nibrs_code, offense, occurred_at,"
                " occurred_ms, lat, lon, address, imported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (case_number) DO UPDATE SET nibrs_code = excluded.nibrs_code,"
                " offense = excluded.offense, occurred_at = excluded.occurred_at,"
                " occurred_ms = excluded.occurred_ms, lat = excluded.lat, lon = excluded.lon,"
                " address = excluded.address, imported_at = excluded.imported_at",
                [(c.case_number, c.nibrs_code, c.offense, c.occurred_at.isoformat(),
                  int(c.occurred_at.timestamp() * 1000), c.lat, c.lon, c.address, now)
                 for c in crimes])
        return len(crimes)

    def _since(self, since: datetime) -> list[ReportedCrime]:
        rows = self.conn.fetchall(
            "SELECT * FROM reported_crimes WHERE occurred_ms >= ?"
            " ORDER BY occurred_ms, case_number", (int(since.timestamp() * 1000),))
        return [ReportedCrime(r["case_number"], r["nibrs_code"], r["offense"],
                              datetime.fromisoformat(r["occurred_at"]),
                              None if r["lat"] is None else float(r["lat"]),
                              None if r["lon"] is None else float(r["lon"]), r["address"])
                for r in rows]
