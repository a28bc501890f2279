"""Answering approved footage requests from the rolling buffer, resumably.

An order (``upload_footage`` on the control connection, or found with ``GET
/api/footage-requests`` after each connection) becomes a job kept in the buffer's index, so it
survives a restart of the agent. A job holds its range in the buffer (no eviction), chooses the
closed segments that cover it (waiting for a segment still being written), numbers them once,
and sends each through the server's upload API (``evidence.uploads``) with the SHA-256
taken when it was captured: announce, then ``PATCH`` from the offset the server has. A broken
connection or a restart resumes where the server stopped receiving; a 422 (the server's hash
differs) sends that segment again from 0, at most three times. Network trouble is retried with
backoff for as long as the agent runs; a job that cannot succeed (nothing of the range in the
buffer, a buffered copy that no longer matches its capture hash, the server refusing) is
reported to the server with its reason (``.../fail``), which the request then shows.

Jobs run one at a time, at most ``kbps`` if the owner limited the upload rate.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from agent.buffer import RollingBuffer
from agent.state import Credential
from ingest.backoff import Backoff
from recording.segments import hash_file
from recording.store import SegmentStore
from recording.times import iso_utc
from rtcc import agent_protocol as proto

log = logging.getLogger(__name__)

HTTP_TIMEOUT = 60.0
MAX_CHUNK = 1024 * 1024
MIN_CHUNK = 16 * 1024
HASH_ATTEMPTS = 3
RESYNC_SECONDS = 600.0
"""How often the agent asks the server for approved work it may have missed."""
WORK_STATES = ("approved", "receiving")
UPLOAD_ID = re.compile(r"^up-[0-9a-f]{24}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agent_footage_jobs (
    request_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    utc_start REAL NOT NULL,
    utc_end REAL NOT NULL,
    case_number TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'queued',
    reason TEXT NOT NULL DEFAULT '',
    reported INTEGER NOT NULL DEFAULT 0,
    hold_id TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (request_id, camera_id)
);
CREATE TABLE IF NOT EXISTS agent_footage_parts (
    request_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    segment_id INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (request_id, camera_id, sequence)
);
"""


class _Retry(Exception):
    """Network trouble or a busy server: try the job again later."""


class _Failed(Exception):
    """The job cannot succeed; the message is the reason the request will show."""


class _Rejected(Exception):
    """The server hashed the segment and discarded it (422): send it again from byte 0."""


@dataclass(frozen=True, slots=True)
class Job:
    request_id: str
    camera_id: str
    start: float
    end: float
    case: str
    state: str
    reason: str
    reported: bool
    hold_id: str | None

    @property
    def name(self) -> str:
        return f"footage request {self.request_id}, camera {self.camera_id}"

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        return cls(row["request_id"], row["camera_id"], float(row["utc_start"]),
                   float(row["utc_end"]), row["case_number"], row["state"], row["reason"],
                   bool(row["reported"]), row["hold_id"])


@dataclass(frozen=True, slots=True)
class Part:
    sequence: int
    segment_id: int
    sha256: str
    bytes: int
    sent: bool


class FootageUploader:
    def __init__(self, credential: Credential, buffer: RollingBuffer | None, *,
                 my_cameras: Callable[[], set[str]], kbps: float = 0.0,
                 backoff_max: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        """``buffer`` None: the agent keeps no footage and fails every order, saying so.
        ``my_cameras``: the server ids of this agent's cameras (for the work it looks up)."""
        self._credential = credential
        self._buffer = buffer
        self._my_cameras = my_cameras
        self._rate = kbps * 1000.0 / 8.0
        self._backoff_max = backoff_max
        self._clock = clock
        self._store: SegmentStore | None = None
        self._http: aiohttp.ClientSession | None = None
        self._wake = asyncio.Event()
        self.segments_sent = 0
        self.bytes_sent = 0

    @property
    def store(self) -> SegmentStore:
        if self._store is None:
            # The buffer's index keeps the jobs across restarts; without a buffer every job
            # fails at once, so memory will do.
            store = self._buffer.store if self._buffer is not None else \
                SegmentStore.open(Path(":memory:"))
            store.conn.executescript(_SCHEMA)
            self._store = store
        return self._store

    # -- orders ---------------------------------------------------------------------------------

    def order(self, order: proto.FootageOrder) -> str:
        """Take an approved range (idempotent); returns the job's state."""
        store = self.store
        row = store.fetchone("SELECT state FROM agent_footage_jobs WHERE request_id = ?"
                             " AND camera_id = ?", (order.request_id, order.camera_id))
        if row is not None:
            self._wake.set()
            return str(row["state"])
        now = self._clock()
        state, reason, hold_id = "queued", "", None
        if self._buffer is None:
            state, reason = "failed", ("this agent keeps no footage buffer (the owner can "
                                       "start it with --buffer-hours)")
        else:
            hold_id = self._buffer.hold(order.camera_id, order.start, order.end, order.case,
                                        f"footage request {order.request_id}")
        store.execute(
            "INSERT INTO agent_footage_jobs (request_id, camera_id, utc_start, utc_end,"
            " case_number, state, reason, hold_id, created, updated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (order.request_id, order.camera_id, order.start, order.end, order.case, state,
             reason, hold_id, now, now))
        log.info("footage request %s: camera %s, %s to %s (case %s): %s", order.request_id,
                 order.camera_id, iso_utc(order.start), iso_utc(order.end), order.case or "-",
                 reason or "queued for upload")
        self._wake.set()
        return state

    async def sync(self) -> int:
        """Ask the server for approved work of this agent's cameras; returns how many orders
        were new. Errors are logged (the next connection, or the periodic check, tries again)."""
        mine = self._my_cameras()
        try:
            status, body = await self._call("GET", "/api/footage-requests")
        except _Retry as exc:
            log.warning("approved footage requests could not be looked up: %s", exc)
            return 0
        if status != 200 or not isinstance(body.get("requests"), list):
            log.warning("approved footage requests could not be looked up (HTTP %d)", status)
            return 0
        new = 0
        for request in body["requests"]:
            if not isinstance(request, dict) or not isinstance(request.get("cameras"), list):
                continue
            for item in request["cameras"]:
                if not isinstance(item, dict) or item.get("camera_id") not in mine or \
                        item.get("status") not in WORK_STATES:
                    continue
                try:
                    order = proto.FootageOrder.from_json({
                        "request_id": request.get("id"), "camera_id": item.get("camera_id"),
                        "start": request.get("start"), "end": request.get("end"),
                        "case": request.get("case")})
                except proto.ProtocolError as exc:
                    log.warning("a footage request listed by the server is malformed: %s", exc)
                    continue
                if self._job(order.request_id, order.camera_id) is None:
                    self.order(order)
                    new += 1
        return new

    # -- the worker -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Work through the jobs until cancelled."""
        backoff = Backoff(1.0, self._backoff_max)
        resync = asyncio.get_running_loop().create_task(self._resync(), name="agent:footage:sync")
        try:
            while True:
                job = self._next_job()
                if job is None:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                try:
                    await self._work(job)
                    backoff.reset()
                except _Retry as exc:
                    delay = backoff.next_delay()
                    log.warning("%s: %s; trying again in %.0f s", job.name, exc, delay)
                    await asyncio.sleep(delay)
                except Exception:  # a bug must not stop the agent serving its cameras
                    delay = backoff.next_delay()
                    log.exception("%s: the upload failed unexpectedly; trying again in %.0f s",
                                  job.name, delay)
                    await asyncio.sleep(delay)
        finally:
            resync.cancel()
            await asyncio.wait({resync})

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(RESYNC_SECONDS)
            try:
                await self.sync()
            except Exception:  # tried again next time
                log.exception("approved footage requests could not be looked up")

    def _job(self, request_id: str, camera_id: str) -> Job | None:
        row = self.store.fetchone("SELECT * FROM agent_footage_jobs WHERE request_id = ?"
                                  " AND camera_id = ?", (request_id, camera_id))
        return None if row is None else Job.from_row(row)

    def _next_job(self) -> Job | None:
        row = self.store.fetchone(
            "SELECT * FROM agent_footage_jobs WHERE state IN ('queued', 'uploading')"
            " OR (state = 'failed' AND reported = 0) ORDER BY created LIMIT 1")
        return None if row is None else Job.from_row(row)

    def _set(self, job: Job, state: str, reason: str = "") -> None:
        self.store.execute(
            "UPDATE agent_footage_jobs SET state = ?, reason = ?, updated = ?"
            " WHERE request_id = ? AND camera_id = ?",
            (state, reason[:500], self._clock(), job.request_id, job.camera_id))

    def _release(self, job: Job) -> None:
        if job.hold_id and self._buffer is not None:
            self._buffer.release(job.hold_id)

    async def _work(self, job: Job) -> None:
        if job.state == "failed":
            await self._report_failure(job, job.reason)
            return
        try:
            parts = await self._parts(job)
            for part in parts:
                if not part.sent:
                    await self._send_part(job, part, len(parts))
            await self._finish(job, len(parts))
        except _Failed as exc:
            reason = str(exc)
            self._set(job, "failed", reason)
            self._release(job)
            log.warning("%s: the upload failed: %s", job.name, reason)
            await self._report_failure(job, reason)
            return
        self._set(job, "complete")
        self._release(job)
        log.info("%s: upload complete (%d segments)", job.name, len(parts))

    # -- choosing the segments ------------------------------------------------------------------

    async def _parts(self, job: Job) -> list[Part]:
        parts = self._load_parts(job)
        if parts:
            return parts
        buffer = self._buffer
        assert buffer is not None
        for _ in range(int(buffer.options.segment_seconds * 3 + 10)):
            if not buffer.recording_into(job.camera_id, job.end):
                break
            await asyncio.sleep(1.0)  # the end of the range is still being written
        rows = buffer.covering(job.camera_id, job.start, job.end)
        if not rows:
            raise _Failed(f"the agent's buffer holds no footage of camera {job.camera_id} "
                          f"between {iso_utc(job.start)} and {iso_utc(job.end)} (it keeps "
                          f"{buffer.options.hours:g} hours)")
        with self.store.transaction() as conn:
            for sequence, row in enumerate(rows):
                conn.execute(
                    "INSERT INTO agent_footage_parts (request_id, camera_id, sequence,"
                    " segment_id, sha256, bytes) VALUES (?, ?, ?, ?, ?, ?)",
                    (job.request_id, job.camera_id, sequence, row.id, row.sha256, row.bytes))
            conn.execute("UPDATE agent_footage_jobs SET state = 'uploading' WHERE"
                         " request_id = ? AND camera_id = ?", (job.request_id, job.camera_id))
        log.info("%s: %d segments (%.1f MiB) cover the range", job.name, len(rows),
                 sum(row.bytes for row in rows) / 2**20)
        return self._load_parts(job)

    def _load_parts(self, job: Job) -> list[Part]:
        rows = self.store.fetchall(
            "SELECT * FROM agent_footage_parts WHERE request_id = ? AND camera_id = ?"
            " ORDER BY sequence", (job.request_id, job.camera_id))
        return [Part(int(r["sequence"]), int(r["segment_id"]), r["sha256"], int(r["bytes"]),
                     bool(r["sent"])) for r in rows]

    # -- sending ----------------------------------------------------------------------------------

    async def _send_part(self, job: Job, part: Part, count: int) -> None:
        buffer = self._buffer
        assert buffer is not None
        row = buffer.segment(part.segment_id)
        if row is None:
            raise _Failed(f"segment {part.sequence} of the range was removed from the agent's "
                          "buffer before it was sent")
        path = buffer.path_of(row)
        try:
            frames = await asyncio.to_thread(buffer.frames_of, row)
            sha, size = await asyncio.to_thread(hash_file, path)
        except OSError as exc:
            raise _Failed(f"segment {part.sequence} cannot be read from the agent's buffer "
                          f"({exc.strerror or exc})") from None
        if sha != part.sha256 or size != part.bytes:
            raise _Failed(f"the agent's copy of segment {part.sequence} (captured "
                          f"{iso_utc(row.utc_start)}) no longer matches the SHA-256 taken at "
                          "capture; it was not sent")
        declaration = {
            "camera_id": job.camera_id, "sequence": part.sequence, "codec": row.codec,
            "size": part.bytes, "sha256": part.sha256,
            "frames": [[f.offset, f.size, f.pts, f.capture_time, int(f.keyframe)]
                       for f in frames],
        }
        for _ in range(HASH_ATTEMPTS):
            status, body = await self._call(
                "POST", f"/api/footage-requests/{job.request_id}/uploads", json=declaration)
            if status not in (200, 201):
                raise _Failed(self._refusal("announcing segment", status, body))
            upload_id = str(body.get("upload_id", ""))
            if not UPLOAD_ID.fullmatch(upload_id):
                raise _Retry("the server's answer names no upload")
            if body.get("state") == "complete":
                break
            offset = int(body.get("offset", 0))
            if offset:
                log.info("%s: resuming segment %d/%d at byte %d of %d (the server has the "
                         "rest)", job.name, part.sequence + 1, count, offset, part.bytes)
            try:
                await self._send_bytes(upload_id, path, offset, part.bytes)
                break
            except _Rejected as exc:
                log.warning("%s: segment %d: %s", job.name, part.sequence, exc)
        else:
            raise _Failed(f"the server rejected segment {part.sequence} {HASH_ATTEMPTS} times "
                          "(its hash of the received bytes differed)")
        self.store.execute(
            "UPDATE agent_footage_parts SET sent = 1 WHERE request_id = ? AND camera_id = ?"
            " AND sequence = ?", (job.request_id, job.camera_id, part.sequence))
        self.segments_sent += 1
        log.info("%s: segment %d/%d sent (%d bytes, SHA-256 %s)", job.name, part.sequence + 1,
                 count, part.bytes, part.sha256)

    def _chunk(self) -> int:
        if self._rate <= 0:
            return MAX_CHUNK
        return int(min(MAX_CHUNK, max(MIN_CHUNK, self._rate / 4)))

    async def _send_bytes(self, upload_id: str, path: Path, offset: int, size: int) -> None:
        started = time.monotonic()
        sent = 0
        while offset < size:
            data = await asyncio.to_thread(_read_at, path, offset,
                                           min(self._chunk(), size - offset))
            if not data:
                raise _Failed(f"the agent's copy of the segment ends at byte {offset} of {size}")
            status, body = await self._call(
                "PATCH", f"/api/uploads/{upload_id}", data=data,
                headers={"Upload-Offset": str(offset),
                         "Content-Type": "application/octet-stream"})
            if status == 422:
                raise _Rejected(str(body.get("error", "the server discarded the segment")))
            if status == 409 and isinstance(body.get("offset"), int):
                offset = int(body["offset"])  # the server has more (or less): go on from there
                continue
            if status != 200:
                raise _Failed(self._refusal("sending segment bytes", status, body))
            sent += len(data)
            self.bytes_sent += len(data)
            offset = int(body.get("offset", offset + len(data)))
            if body.get("state") == "complete":
                return
            if self._rate > 0:
                ahead = started + sent / self._rate - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
        # Every byte is there but the server did not call it complete: ask it where it stands.
        status, body = await self._call("GET", f"/api/uploads/{upload_id}")
        if status != 200 or body.get("state") != "complete":
            raise _Retry(f"the server has {body.get('offset')} of {size} bytes of the segment")

    async def _finish(self, job: Job, count: int) -> None:
        status, body = await self._call(
            "POST", f"/api/footage-requests/{job.request_id}/cameras/{job.camera_id}/complete",
            json={})
        if status == 409 and "not fully uploaded" in str(body.get("error", "")):
            self.store.execute("UPDATE agent_footage_parts SET sent = 0 WHERE request_id = ?"
                               " AND camera_id = ?", (job.request_id, job.camera_id))
            raise _Retry("the server is missing a segment; sending again")
        if status != 200:
            raise _Failed(self._refusal("completing the upload", status, body))
        log.info("%s: the server has all %d segments", job.name, count)

    async def _report_failure(self, job: Job, reason: str) -> None:
        status, body = await self._call(
            "POST", f"/api/footage-requests/{job.request_id}/cameras/{job.camera_id}/fail",
            json={"reason": reason})
        if status != 200:
            log.info("%s: the server did not record the failure (HTTP %d: %s)", job.name,
                     status, str(body.get("error", ""))[:200])
        self.store.execute(
            "UPDATE agent_footage_jobs SET state = 'failed', reported = 1, updated = ?"
            " WHERE request_id = ? AND camera_id = ?",
            (self._clock(), job.request_id, job.camera_id))

    # -- HTTP -------------------------------------------------------------------------------------

    @staticmethod
    def _refusal(what: str, status: int, body: dict[str, Any]) -> str:
        reason = str(body.get("error", "no reason given"))[:300]
        return f"the server refused {what} (HTTP {status}): {reason}"

    async def _call(self, method: str, path: str, *, json: dict[str, Any] | None = None,
                    data: bytes | None = None, headers: dict[str, str] | None = None
                    ) -> tuple[int, dict[str, Any]]:
        """(status, JSON body); raises _Retry on network trouble and 429/5xx answers."""
        http = self._http
        if http is None or http.closed:
            http = self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT, connect=10.0))
        url = self._credential.server + path
        try:
            async with http.request(method, url, json=json, data=data,
                                    headers={**self._credential.headers(), **(headers or {})}
                                    ) as response:
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = {}
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _Retry(f"{type(exc).__name__} talking to the server") from None
        if status == 429 or status >= 500:
            reason = body.get("error") if isinstance(body, dict) else None
            raise _Retry(f"the server answered HTTP {status} ({str(reason or '')[:200]})")
        return status, body if isinstance(body, dict) else {}

    def stats(self) -> dict[str, object]:
        counts = {str(row["state"]): int(row["n"]) for row in self.store.fetchall(
            "SELECT state, COUNT(*) AS n FROM agent_footage_jobs GROUP BY state")}
        return {"jobs": counts, "segments_sent": self.segments_sent,
                "bytes_sent": self.bytes_sent}

    async def aclose(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.close()
        store, self._store = self._store, None
        if store is not None and self._buffer is None:
            store.close()


def _read_at(path: Path, offset: int, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)
