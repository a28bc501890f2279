"""Agents, their enrollment tokens and the cameras they report: on SQLite one file (WAL), on
PostgreSQL the ``agents`` schema (``rtcc.db``).

Enrollment tokens are stored as SHA-256 hashes, used once, and expire. The agent's credential is
an API token of an AGENT-role account in the security store (hashed there); this file only keeps
which account and token belong to which agent. Camera rows hold what the agent reported (names,
models, profiles, status) and the camera id the server assigned: no address, no password.

``AgentStore`` is async: its SQL runs on the store's own thread (``rtcc.offload``), so a lock on
the file held by another process never stalls the event loop.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from rtcc.agent_protocol import CameraReport, ProfileReport
from rtcc.cameras import camera_id_for
from rtcc.db import Database, Migration, Row, SqlConnection, StoreSchema
from rtcc.offload import OffloadedStore, StoreClosed

STORE_FILE = "agents.sqlite3"
ENROLLMENT_PREFIX = "rtcce_"
_SQLITE_PRAGMAS = ("journal_mode=WAL", "foreign_keys=ON")
"""The pragmas the file has always been opened with."""

_SQLITE_TABLES = """
CREATE TABLE IF NOT EXISTS enrollments (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    owner_id TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    used REAL,
    agent_id TEXT
);
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL,
    user_id INTEGER NOT NULL UNIQUE,
    token_id INTEGER NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    hostname TEXT NOT NULL DEFAULT '',
    version TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    last_seen REAL,
    revoked REAL,
    revoked_by TEXT
);
CREATE INDEX IF NOT EXISTS agents_owner ON agents(owner_id);
CREATE TABLE IF NOT EXISTS agent_cameras (
    camera_id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    owner_id TEXT NOT NULL,
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    manufacturer TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    firmware TEXT NOT NULL DEFAULT '',
    profiles TEXT NOT NULL DEFAULT '[]',
    ptz INTEGER NOT NULL DEFAULT 0,
    snapshot INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'ok',
    error TEXT NOT NULL DEFAULT '',
    updated REAL NOT NULL,
    UNIQUE (agent_id, key)
);
"""

_POSTGRESQL_TABLES = """
CREATE TABLE IF NOT EXISTS enrollments (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    owner_id TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    expires DOUBLE PRECISION NOT NULL,
    used DOUBLE PRECISION,
    agent_id TEXT
);
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL,
    user_id BIGINT NOT NULL UNIQUE,
    token_id BIGINT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    hostname TEXT NOT NULL DEFAULT '',
    version TEXT NOT NULL DEFAULT '',
    created DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION,
    revoked DOUBLE PRECISION,
    revoked_by TEXT
);
CREATE INDEX IF NOT EXISTS agents_owner ON agents(owner_id);
CREATE TABLE IF NOT EXISTS agent_cameras (
    camera_id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    owner_id TEXT NOT NULL,
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    manufacturer TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    firmware TEXT NOT NULL DEFAULT '',
    profiles TEXT NOT NULL DEFAULT '[]',
    ptz BIGINT NOT NULL DEFAULT 0,
    snapshot BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'ok',
    error TEXT NOT NULL DEFAULT '',
    updated DOUBLE PRECISION NOT NULL,
    UNIQUE (agent_id, key)
);
"""

SCHEMA = StoreSchema(
    name="agents",
    migrations=(Migration(1, "enrollments, agents and their cameras", sqlite=_SQLITE_TABLES,
                          postgresql=_POSTGRESQL_TABLES),),
    tables=("enrollments", "agents", "agent_cameras"),
    sqlite_file=STORE_FILE,
)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Enrollment:
    id: str
    owner_id: str
    created_by: str
    created: float
    expires: float
    used: float | None
    agent_id: str | None


@dataclass(frozen=True, slots=True)
class AgentRecord:
    id: str
    owner_id: str
    user_id: int
    token_id: int
    name: str
    hostname: str
    version: str
    created: float
    last_seen: float | None
    revoked: float | None

    @classmethod
    def from_row(cls, row: Row) -> AgentRecord:
        return cls(row["id"], row["owner_id"], int(row["user_id"]), int(row["token_id"]),
                   row["name"], row["hostname"], row["version"], float(row["created"]),
                   row["last_seen"], row["revoked"])


@dataclass(frozen=True, slots=True)
class AgentCamera:
    camera_id: str
    agent_id: str
    owner_id: str
    report: CameraReport
    updated: float

    @classmethod
    def from_row(cls, row: Row) -> AgentCamera:
        profiles = tuple(ProfileReport.from_json(item) for item in json.loads(row["profiles"]))
        report = CameraReport(
            key=row["key"], name=row["name"],
            source="onvif" if row["source"] == "onvif" else "rtsp",
            manufacturer=row["manufacturer"], model=row["model"], firmware=row["firmware"],
            profiles=profiles, ptz=bool(row["ptz"]), snapshot=bool(row["snapshot"]),
            status="error" if row["status"] == "error" else "ok", error=row["error"],
        )
        return cls(row["camera_id"], row["agent_id"], row["owner_id"], report,
                   float(row["updated"]))

    def as_json(self) -> dict[str, Any]:
        body = self.report.to_json()
        body.pop("key")
        return {"camera_id": self.camera_id, "agent_id": self.agent_id,
                "owner_id": self.owner_id, "updated": self.updated, **body}


class _AgentTables:
    """The SQL, run only on the store's thread."""

    def __init__(self, conn: SqlConnection) -> None:
        self.conn = conn

    @classmethod
    def open(cls, database: Database) -> _AgentTables:
        return cls(database.open_store(SCHEMA, sqlite_pragmas=_SQLITE_PRAGMAS))

    # -- enrollments --------------------------------------------------------------------------

    def create_enrollment(self, owner_id: str, created_by: str, now: float,
                          ttl: float) -> tuple[Enrollment, str]:
        token = ENROLLMENT_PREFIX + secrets.token_urlsafe(32)
        enrollment_id = secrets.token_hex(6)
        self.conn.execute(
            "INSERT INTO enrollments (id, token_hash, owner_id, created_by, created, expires)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (enrollment_id, token_digest(token), owner_id, created_by, now, now + ttl),
        )
        return Enrollment(enrollment_id, owner_id, created_by, now, now + ttl, None, None), token

    def enrollment_by_token(self, token: str) -> Enrollment | None:
        row = self.conn.execute(
            "SELECT * FROM enrollments WHERE token_hash = ?", (token_digest(token),)
        ).fetchone()
        if row is None:
            return None
        return Enrollment(row["id"], row["owner_id"], row["created_by"], float(row["created"]),
                          float(row["expires"]), row["used"], row["agent_id"])

    def claim_enrollment(self, enrollment_id: str, now: float) -> bool:
        """Mark it used; False if another request used it first."""
        cursor = self.conn.execute(
            "UPDATE enrollments SET used = ? WHERE id = ? AND used IS NULL", (now, enrollment_id)
        )
        return cursor.rowcount == 1

    # -- agents -------------------------------------------------------------------------------

    def new_agent_id(self) -> str:
        while True:
            candidate = "a" + secrets.token_hex(4)
            if self.agent(candidate) is None:
                return candidate

    def add_agent(self, agent_id: str, owner_id: str, user_id: int, token_id: int, name: str,
                  enrollment_id: str, now: float) -> AgentRecord:
        with self.conn.transaction() as conn:
            conn.execute(
                "INSERT INTO agents (id, owner_id, user_id, token_id, name, created)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (agent_id, owner_id, user_id, token_id, name, now),
            )
            conn.execute("UPDATE enrollments SET agent_id = ? WHERE id = ?",
                         (agent_id, enrollment_id))
        record = self.agent(agent_id)
        assert record is not None
        return record

    def agent(self, agent_id: str) -> AgentRecord | None:
        row = self.conn.execute("SELECT * FROM agents WHERE id = ?", (agent_id,)).fetchone()
        return None if row is None else AgentRecord.from_row(row)

    def agent_of_user(self, user_id: int) -> AgentRecord | None:
        row = self.conn.execute("SELECT * FROM agents WHERE user_id = ?", (user_id,)).fetchone()
        return None if row is None else AgentRecord.from_row(row)

    def agents(self, owner_id: str | None = None) -> list[AgentRecord]:
        if owner_id is None:
            rows = self.conn.execute("SELECT * FROM agents ORDER BY created").fetchall()
        else:
            rows = self.conn.execute(
                "SELECT * FROM agents WHERE owner_id = ? ORDER BY created", (owner_id,)
            ).fetchall()
        return [AgentRecord.from_row(row) for row in rows]

    def seen(self, agent_id: str, now: float, hostname: str | None = None,
             version: str | None = None) -> None:
        self.conn.execute(
            "UPDATE agents SET last_seen = ?, hostname = COALESCE(?, hostname),"
            " version = COALESCE(?, version) WHERE id = ?",
            (now, hostname, version, agent_id),
        )

    def revoke(self, agent_id: str, by: str, now: float) -> bool:
        cursor = self.conn.execute(
            "UPDATE agents SET revoked = ?, revoked_by = ? WHERE id = ? AND revoked IS NULL",
            (now, by, agent_id),
        )
        return cursor.rowcount == 1

    # -- cameras ------------------------------------------------------------------------------

    def save_cameras(self, agent: AgentRecord, reports: list[CameraReport],
                     now: float) -> list[AgentCamera]:
        """Insert or update the reported cameras (cameras not reported stay, with their last
        known state); returns the reported ones with their camera ids."""
        with self.conn.transaction() as conn:
            for report in reports:
                conn.execute(
                    "INSERT INTO agent_cameras (camera_id, agent_id, owner_id, key, name, source,"
                    " manufacturer, model, firmware, profiles, ptz, snapshot, status, error,"
                    " updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT(camera_id) DO UPDATE SET name = excluded.name,"
                    " source = excluded.source, manufacturer = excluded.manufacturer,"
                    " model = excluded.model, firmware = excluded.firmware,"
                    " profiles = excluded.profiles, ptz = excluded.ptz,"
                    " snapshot = excluded.snapshot, status = excluded.status,"
                    " error = excluded.error, updated = excluded.updated",
                    (camera_id_for(agent.id, report.key), agent.id, agent.owner_id, report.key,
                     report.name, report.source, report.manufacturer, report.model,
                     report.firmware, json.dumps([p.to_json() for p in report.profiles]),
                     int(report.ptz), int(report.snapshot), report.status, report.error, now),
                )
        return [
            AgentCamera(camera_id_for(agent.id, report.key), agent.id, agent.owner_id, report,
                        now)
            for report in reports
        ]

    def cameras(self, agent_id: str | None = None) -> list[AgentCamera]:
        if agent_id is None:
            rows = self.conn.execute(
                "SELECT c.* FROM agent_cameras c JOIN agents a ON a.id = c.agent_id"
                " WHERE a.revoked IS NULL ORDER BY c.camera_id"
            ).fetchall()
        else:
            rows = self.conn.execute(
                "SELECT * FROM agent_cameras WHERE agent_id = ? ORDER BY camera_id", (agent_id,)
            ).fetchall()
        return [AgentCamera.from_row(row) for row in rows]

    def camera(self, camera_id: str) -> AgentCamera | None:
        row = self.conn.execute(
            "SELECT * FROM agent_cameras WHERE camera_id = ?", (camera_id,)
        ).fetchone()
        return None if row is None else AgentCamera.from_row(row)


class AgentStore(OffloadedStore):
    """Agents, enrollments and agent cameras; every call runs on the store's thread."""

    def __init__(self) -> None:
        super().__init__("agent-store")
        self._opened: _AgentTables | None = None

    @classmethod
    async def open(cls, database: Database) -> AgentStore:
        store = cls()
        try:
            store._opened = await store.run(_AgentTables.open, database)
        except BaseException:
            await store.aclose()
            raise
        return store

    @property
    def _tables(self) -> _AgentTables:
        if self._opened is None:
            raise StoreClosed("agent")
        return self._opened

    def _release(self) -> None:
        tables, self._opened = self._opened, None
        if tables is not None:
            tables.conn.close()

    async def create_enrollment(self, owner_id: str, created_by: str, now: float,
                                ttl: float) -> tuple[Enrollment, str]:
        return await self.run(self._tables.create_enrollment, owner_id, created_by, now, ttl)

    async def enrollment_by_token(self, token: str) -> Enrollment | None:
        return await self.run(self._tables.enrollment_by_token, token)

    async def claim_enrollment(self, enrollment_id: str, now: float) -> bool:
        """Mark it used; False if another request used it first."""
        return await self.run(self._tables.claim_enrollment, enrollment_id, now)

    async def new_agent_id(self) -> str:
        return await self.run(self._tables.new_agent_id)

    async def add_agent(self, agent_id: str, owner_id: str, user_id: int, token_id: int,
                        name: str, enrollment_id: str, now: float) -> AgentRecord:
        return await self.run(self._tables.add_agent, agent_id, owner_id, user_id, token_id,
                              name, enrollment_id, now)

    async def agent(self, agent_id: str) -> AgentRecord | None:
        return await self.run(self._tables.agent, agent_id)

    async def agent_of_user(self, user_id: int) -> AgentRecord | None:
        return await self.run(self._tables.agent_of_user, user_id)

    async def agents(self, owner_id: str | None = None) -> list[AgentRecord]:
        return await self.run(self._tables.agents, owner_id)

    async def seen(self, agent_id: str, now: float, hostname: str | None = None,
                   version: str | None = None) -> None:
        await self.run(self._tables.seen, agent_id, now, hostname, version)

    async def revoke(self, agent_id: str, by: str, now: float) -> bool:
        return await self.run(self._tables.revoke, agent_id, by, now)

    async def save_cameras(self, agent: AgentRecord, reports: list[CameraReport],
                           now: float) -> list[AgentCamera]:
        """Insert or update the reported cameras (cameras not reported stay, with their last
        known state); returns the reported ones with their camera ids."""
        return await self.run(self._tables.save_cameras, agent, reports, now)

    async def cameras(self, agent_id: str | None = None) -> list[AgentCamera]:
        return await self.run(self._tables.cameras, agent_id)

    async def camera(self, camera_id: str) -> AgentCamera | None:
        return await self.run(self._tables.camera, camera_id)

