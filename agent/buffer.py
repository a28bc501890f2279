"""The agent's rolling buffer: every camera recorded continuously on the owner's machine, so an
approved footage request can be answered with the original bytes.

Each camera's main profile is pulled over RTSP by its own ``RtspSource`` (separate from live
publishing) into a local ``StreamHub``; a ``CameraRecorder`` (the recorder the server uses too,
from ``recording``) writes what it receives, unchanged, in segments cut at keyframes, each hashed
with SHA-256 as it is written. The index is a small SQLite file in the buffer folder with the
segment store's schema (``recording.store``): camera, camera pts range, UTC start and end, size,
frame count, hash.

Segments are evicted once they end more than ``hours`` ago, and oldest first while the buffer
holds more than ``max_bytes``; never a segment a hold covers (an accepted footage request holds
its range until its upload is over). Below ``min_free_bytes`` of free disk a camera stops
buffering with a logged alert, keeping everything already written, and starts again once
eviction (or the owner) has freed space. A segment a crash left open is closed at the next
start with the whole frames on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from ingest.rtsp import RtspSource, RtspTarget
from recording.holds import add_hold, release_hold
from recording.recorder import CameraRecorder, RecorderSettings, RecorderState
from recording.segments import FrameEntry, contained, read_index
from recording.store import SegmentRow, SegmentStore
from recording.upkeep import delete_segments, recover_open_segments
from rtcc.camera_url import parse_rtsp_url
from rtcc.config import IngestConfig
from rtcc.errors import RtccError
from rtcc.hub import Source, StreamHub, StreamSettings

log = logging.getLogger(__name__)

INDEX_FILE = "index.sqlite3"
PROFILE = "main"
RESTART_AFTER_FAILURE = 30.0
EVICT_BATCH = 64


@dataclass(frozen=True, slots=True)
class BufferOptions:
    directory: Path
    hours: float
    """Keep segments that ended less than this long ago."""
    max_bytes: int = 0
    """Evict oldest first above this many bytes (0: no limit but the free-space floor)."""
    segment_seconds: float = 10.0
    min_free_bytes: int = 512 * 2**20
    upkeep_interval: float = 30.0
    """Seconds between evictions (and restarts of cameras a full disk stopped)."""


@dataclass(frozen=True, slots=True)
class BufferedCamera:
    """What the buffer records: the camera's key on the agent and where to pull it from."""

    key: str
    target: RtspTarget


@dataclass
class _Camera:
    key: str
    target: RtspTarget
    recorder: CameraRecorder
    halted_at: float = 0.0


class RollingBuffer:
    def __init__(self, options: BufferOptions, ingest: IngestConfig,
                 clock: Callable[[], float] = time.time) -> None:
        self.options = options
        self._ingest = ingest
        self._clock = clock
        self.root = options.directory
        self._store: SegmentStore | None = None
        self._hub = StreamHub()
        self._cameras: dict[str, _Camera] = {}
        self._lock = asyncio.Lock()
        self.alerts: deque[str] = deque(maxlen=20)
        self.evicted = 0
        self.recovered = 0

    @property
    def store(self) -> SegmentStore:
        if self._store is None:
            raise RuntimeError("the buffer is not open")
        return self._store

    # -- lifecycle ------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open (or create, mode 0700) the folder and its index; close what a crash left open;
        evict what is past the limits."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root.chmod(0o700)
        self._store = await asyncio.to_thread(SegmentStore.open, self.root / INDEX_FILE)
        recovered = await recover_open_segments(self.store, self.root, self._clock)
        for row, closed in recovered:
            log.warning("camera %s: buffered segment %d was left open by an interruption and "
                        "closed with %d frames (%s)", row.camera_id, row.id, closed.frames,
                        closed.note)
        self.recovered = len(recovered)
        await self.evict()
        hours = self.options.hours
        log.info("buffer: keeping %g hours%s in %s", hours,
                 f" (at most {self.options.max_bytes // 2**20} MiB)"
                 if self.options.max_bytes else "", self.root)

    async def run(self) -> None:
        """Evict and restart halted cameras every ``upkeep_interval`` seconds, until cancelled."""
        while True:
            await asyncio.sleep(self.options.upkeep_interval)
            try:
                await self.evict()
                await self._restart_halted()
            except (OSError, sqlite3.Error) as exc:
                log.error("buffer upkeep failed: %s", exc)

    async def aclose(self) -> None:
        """Close every camera's current segment (written and hashed) and the index."""
        async with self._lock:
            cameras, self._cameras = self._cameras, {}
            await asyncio.gather(*(camera.recorder.aclose() for camera in cameras.values()))
            await self._hub.aclose()
            store, self._store = self._store, None
            if store is not None:
                store.close()

    # -- which cameras ----------------------------------------------------------------------------

    async def follow(self, cameras: Mapping[str, BufferedCamera]) -> None:
        """Record these cameras (camera id -> camera): start the new ones, restart those whose
        address changed, stop those no longer there."""
        async with self._lock:
            if self._store is None:
                return
            for camera_id in list(self._cameras):
                wanted = cameras.get(camera_id)
                if wanted is None or wanted.target != self._cameras[camera_id].target:
                    await self._stop(camera_id, "the camera is gone" if wanted is None
                                     else "the camera's address changed")
            for camera_id, camera in cameras.items():
                if camera_id not in self._cameras:
                    self._start(camera_id, camera)

    def _start(self, camera_id: str, camera: BufferedCamera) -> None:
        try:
            parse_rtsp_url(camera.target.url)
        except RtccError as exc:
            log.warning("camera %s: not buffered: %s", camera.key, exc)
            return
        ingest = self._ingest

        def source() -> Source:
            return RtspSource(f"{camera.key}/buffer", camera.target, ingest)

        if not self._hub.has_camera(camera_id):
            self._hub.register(camera_id, PROFILE, source,
                               StreamSettings(close_after=5.0, start_timeout=30.0))
        self._cameras[camera_id] = _Camera(camera.key, camera.target,
                                           self._recorder(camera_id))
        log.info("camera %s: buffering (%s)", camera.key, camera_id)

    def _recorder(self, camera_id: str) -> CameraRecorder:
        settings = RecorderSettings(segment_seconds=self.options.segment_seconds,
                                    min_free_bytes=self.options.min_free_bytes)
        recorder = CameraRecorder(self._hub.get(camera_id, PROFILE), self.store, self.root,
                                  settings, reason="rolling buffer", on_alert=self._alert)
        recorder.start()
        return recorder

    async def _stop(self, camera_id: str, why: str) -> None:
        camera = self._cameras.pop(camera_id)
        await camera.recorder.aclose()
        await self._hub.unregister(camera_id, why)
        log.info("camera %s: buffering stopped (%s)", camera.key, why)

    def _alert(self, recorder: CameraRecorder, state: RecorderState, reason: str) -> None:
        camera = self._cameras.get(recorder.camera_id)
        if camera is not None:
            camera.halted_at = self._clock()
        key = camera.key if camera is not None else recorder.camera_id
        log.error("camera %s: ALERT buffering stopped (%s): %s", key, state, reason)
        self.alerts.append(f"{key}: {state}: {reason}")

    async def _restart_halted(self) -> None:
        async with self._lock:
            if self._store is None:
                return
            for camera_id, camera in self._cameras.items():
                recorder = camera.recorder
                if recorder.state is RecorderState.DISK_FULL:
                    margin = max(self.options.min_free_bytes // 10, 64 * 2**20)
                    if self.free_bytes() < self.options.min_free_bytes + margin:
                        continue
                elif recorder.state is RecorderState.FAILED:
                    if self._clock() - camera.halted_at < RESTART_AFTER_FAILURE:
                        continue
                elif recorder.state is not RecorderState.STOPPED:
                    continue
                await recorder.aclose()
                camera.recorder = self._recorder(camera_id)
                log.warning("camera %s: buffering again (was %s)", camera.key, recorder.state)

    @property
    def min_free_bytes(self) -> int:
        return self.options.min_free_bytes

    @min_free_bytes.setter
    def min_free_bytes(self, value: int) -> None:
        """The free-space floor, applied from each camera's next segment."""
        self.options = replace(self.options, min_free_bytes=value)
        for camera in self._cameras.values():
            camera.recorder.min_free_bytes = value

    def free_bytes(self) -> int:
        try:
            return shutil.disk_usage(self.root).free
        except OSError:
            return 0

    # -- eviction -------------------------------------------------------------------------------

    async def evict(self) -> int:
        """Delete segments past the hours limit, then oldest first above the byte limit; a
        segment a hold covers stays. Returns how many were deleted."""
        store = self.store
        cutoff = self._clock() - self.options.hours * 3600.0
        deleted: list[SegmentRow] = []
        for camera_id in store.cameras_with_segments():
            expired = store.evictable(camera_id, cutoff)
            deleted += await delete_segments(store, self.root, expired)
        by_age = len(deleted)
        limit = self.options.max_bytes
        if limit > 0:
            total = self.bytes_held()
            while total > limit:
                oldest = _oldest_unheld(store)
                if not oldest:
                    log.warning("buffer: %d MiB held, above the %d MiB limit, but every "
                                "segment left is held for a footage request", total // 2**20,
                                limit // 2**20)
                    break
                chosen: list[SegmentRow] = []
                for row in oldest:
                    if total <= limit:
                        break
                    chosen.append(row)
                    total -= row.bytes
                gone = await delete_segments(store, self.root, chosen)
                if not gone:
                    break
                deleted += gone
        if deleted:
            self.evicted += len(deleted)
            log.info("buffer: evicted %d segments (%d older than %g hours, %d over the size "
                     "limit)", len(deleted), by_age, self.options.hours, len(deleted) - by_age)
        return len(deleted)

    def bytes_held(self) -> int:
        row = self.store.fetchone(
            "SELECT COALESCE(SUM(bytes), 0) AS total FROM segments WHERE state != 'open'")
        return int(row["total"]) if row is not None else 0

    # -- reading ----------------------------------------------------------------------------------

    def covering(self, camera_id: str, start: float, end: float) -> list[SegmentRow]:
        """Closed segments of a camera that overlap [start, end], oldest first."""
        return self.store.segments_between(camera_id, start, end)

    def recording_into(self, camera_id: str, end: float) -> bool:
        """True while a segment of the camera that began before ``end`` is still open."""
        row = self.store.fetchone(
            "SELECT 1 FROM segments WHERE camera_id = ? AND state = 'open' AND utc_start <= ?"
            " LIMIT 1", (camera_id, end))
        return row is not None

    def segment(self, segment_id: int) -> SegmentRow | None:
        return self.store.segment(segment_id)

    def path_of(self, row: SegmentRow) -> Path:
        return contained(self.root, row.path)

    def frames_of(self, row: SegmentRow) -> list[FrameEntry]:
        return read_index(self.path_of(row))

    def hold(self, camera_id: str, start: float, end: float, case: str, reason: str) -> str:
        """Keep the segments of this range until ``release``; returns the hold's id."""
        return add_hold(self.store, camera_id=camera_id, case_number=case or "-", start=start,
                        end=end, reason=reason, created_by="agent", now=self._clock()).id

    def release(self, hold_id: str) -> None:
        release_hold(self.store, hold_id, "agent", self._clock())

    def stats(self) -> dict[str, object]:
        recorders = [camera.recorder.stats() for camera in self._cameras.values()]
        with contextlib.suppress(RuntimeError):
            held = self.bytes_held()
            return {"cameras": len(recorders), "bytes": held, "evicted": self.evicted,
                    "recovered": self.recovered, "alerts": list(self.alerts),
                    "recorders": recorders}
        return {"cameras": 0}


def _oldest_unheld(store: SegmentStore) -> list[SegmentRow]:
    rows = store.fetchall(
        "SELECT * FROM segments s WHERE s.state != 'open' AND NOT EXISTS (SELECT 1 FROM holds h"
        " WHERE h.camera_id = s.camera_id AND h.released_at IS NULL"
        " AND h.utc_start <= s.utc_end AND h.utc_end >= s.utc_start)"
        " ORDER BY s.utc_start, s.id LIMIT ?", (EVICT_BATCH,))
    return [SegmentRow.from_row(row) for row in rows]
