"""Which cameras record, and for how long their recordings are kept.

A camera records while it is set ``record: true`` in the configuration or in the catalog (through
the API), or while it is linked to an active incident or panic alert and its owner's consent
allows live access now (``live_emergency`` or ``live_always``, within the sharing windows), or
while code asks for it with ``watch``. One node of several records only the cameras ``claim``
gives it (those it holds the lease of), so a camera is recorded once, and by another node when
its node dies. ``reconcile`` (every ``reconcile_interval`` seconds)
computes that set from scratch and starts and stops ``CameraRecorder``s to match; the catalog's
flags are read again every ``flags_interval`` seconds. When part of the set cannot be read (the
catalog or incident store is down), the pass starts what it knows is wanted and stops nothing:
an outage never ends a recording, and the next pass after it catches up. A recorder stopped by a
full disk is restarted once the free space is back above the floor.

Retention deletes closed segments older than the camera's ``retention_days`` (default
``evidence.retention_days``), never one that an active legal hold covers. Every start, stop,
alert, recovery and eviction is written to the audit log.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sqlite3
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NamedTuple

from evidence.store import AsyncEvidenceStore, EvidenceStore
from recording.recorder import CameraRecorder, RecorderSettings, RecorderState
from recording.upkeep import delete_segments, recover_open_segments
from rtcc.access import AuditSink, CameraDirectory, IncidentLookup, RecordFlags
from rtcc.config import SharingLevel
from rtcc.consent import in_windows
from rtcc.errors import AuditWriteError, RtccError
from rtcc.hub import StreamHub
from rtcc.tasks import TaskSupervisor

log = logging.getLogger(__name__)

LIVE_LEVELS = frozenset({SharingLevel.LIVE_EMERGENCY, SharingLevel.LIVE_ALWAYS})
RESTART_AFTER_FAILURE = 30.0
CONSENT_TIMEOUT = 2.0
_READ_ERRORS = (RtccError, OSError, TimeoutError, sqlite3.Error)
"""What reading the catalog or the incidents raises while their store is unreachable."""
STORE_TIMEOUT = 10.0
"""Seconds one pass waits for the catalog's flags or the active incidents."""


class _Disk(NamedTuple):
    free: int
    total: int


def _disk_of(root: Path) -> _Disk:
    """The recordings disk's free and total bytes; an unreadable disk counts as full."""
    try:
        usage = shutil.disk_usage(root)
    except OSError:
        return _Disk(0, 0)
    return _Disk(usage.free, usage.total)


class RecordingManager:
    def __init__(
        self,
        *,
        hub: StreamHub,
        store: AsyncEvidenceStore,
        root: Path,
        audit: AuditSink,
        record_cameras: dict[str, str],
        retention_days: dict[str, int],
        default_retention_days: int,
        recorder_settings: RecorderSettings,
        incidents: IncidentLookup | None = None,
        directory: Callable[[], CameraDirectory | None] = lambda: None,
        fallback_sharing: dict[str, SharingLevel] | None = None,
        record_flags: Callable[[], RecordFlags | None] = lambda: None,
        claim: Callable[[frozenset[str]], Awaitable[frozenset[str]]] | None = None,
        flags_interval: float = 10.0,
        reconcile_interval: float = 2.0,
        retention_interval: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._hub = hub
        self._store = store
        self._root = root
        self._audit = audit
        self._record_cameras = dict(record_cameras)
        self._retention_days = dict(retention_days)
        self._default_retention = default_retention_days
        self._settings = recorder_settings
        self._incidents = incidents
        self._directory = directory
        self._fallback_sharing = dict(fallback_sharing or {})
        self._record_flags = record_flags
        self._claim = claim
        self._flags_interval = flags_interval
        self._flags: frozenset[str] = frozenset()
        self._flags_read_at: float | None = None
        self._last_warning = 0.0
        self._reconcile_interval = reconcile_interval
        self._retention_interval = retention_interval
        self._clock = clock
        self._recorders: dict[str, CameraRecorder] = {}
        self._halted_at: dict[str, float] = {}
        self._watched: dict[str, str] = {}
        self._tasks: TaskSupervisor | None = None
        self._alert_audits = TaskSupervisor("evidence:alerts")
        self._alert_writes: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self._min_free_bytes = recorder_settings.min_free_bytes
        self._disk: _Disk | None = None
        self.alerts: deque[dict[str, object]] = deque(maxlen=20)
        self.evicted_segments = 0
        self.recovered_segments = 0
        self.passes = 0
        self.failed_passes = 0

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.recover()
        await self.enforce_retention()
        await self.reconcile()
        self._tasks = TaskSupervisor("evidence")
        self._tasks.start("evidence:recordings", self._loop)

    async def aclose(self) -> None:
        tasks, self._tasks = self._tasks, None
        if tasks is not None:
            await tasks.aclose()
        async with self._lock:
            recorders = list(self._recorders.values())
            self._recorders.clear()
        await asyncio.gather(*(self._stop(recorder, "server stopping") for recorder in recorders))
        if self._alert_writes:  # let the alerts' audit entries be written
            await asyncio.wait(set(self._alert_writes))
        await self._alert_audits.aclose()

    async def _loop(self) -> None:
        last_retention = self._clock()
        while True:
            await asyncio.sleep(self._reconcile_interval)
            try:
                await self.reconcile()
                if self._clock() - last_retention >= self._retention_interval:
                    last_retention = self._clock()
                    await self.enforce_retention()
            except Exception:  # an unexpected failure must not end recording upkeep either
                self.failed_passes += 1
                log.exception("recording upkeep failed; trying again in %.0f s",
                              self._reconcile_interval)

    def _warn(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last_warning >= 30.0:
            self._last_warning = now
            log.warning(message, *args)

    # -- what records ---------------------------------------------------------------------------

    @property
    def min_free_bytes(self) -> int:
        return self._min_free_bytes

    @min_free_bytes.setter
    def min_free_bytes(self, value: int) -> None:
        """The free-space floor, applied from each recorder's next segment."""
        self._min_free_bytes = value
        for recorder in self._recorders.values():
            recorder.min_free_bytes = value

    def watch(self, camera_id: str, reason: str) -> None:
        """Record this camera until ``unwatch`` (applied at the next ``reconcile``)."""
        self._watched[camera_id] = reason

    def unwatch(self, camera_id: str) -> None:
        self._watched.pop(camera_id, None)

    async def _consent_allows(self, camera_id: str, now: float) -> bool:
        directory = self._directory()
        if directory is None:
            return self._fallback_sharing.get(camera_id) in LIVE_LEVELS
        try:
            async with asyncio.timeout(CONSENT_TIMEOUT):
                consent = await directory.consent_of(camera_id)
        except TimeoutError:
            log.warning("camera %s: the catalog did not answer; not recording it", camera_id)
            return False
        if consent is None or consent.sharing not in LIVE_LEVELS:
            return False
        try:
            return in_windows(consent.windows, consent.timezone, now)
        except ValueError:
            return False

    async def desired(self) -> dict[str, str]:
        """Camera id -> why it records now (what could be read of it)."""
        wanted, _complete = await self._desired()
        return wanted

    async def _desired(self) -> tuple[dict[str, str], bool]:
        """Camera id -> why it records now, and whether every source of that answer was read."""
        now = self._clock()
        complete = True
        wanted: dict[str, str] = {}
        for camera_id, reason in self._record_cameras.items():
            wanted[camera_id] = reason
        for camera_id, reason in self._watched.items():
            wanted.setdefault(camera_id, reason)
        try:
            await self._refresh_flags()
        except _READ_ERRORS as exc:  # the last flags read stay in force until the catalog answers
            complete = False
            self._warn("recording: cannot read the catalog's record flags (%s: %s); using "
                       "the last ones read", type(exc).__name__, exc)
        for camera_id in self._flags:
            wanted.setdefault(camera_id, "record: true in the catalog")
        if self._incidents is not None:
            try:
                async with asyncio.timeout(STORE_TIMEOUT):
                    await self._add_incident_cameras(wanted, now)
            except _READ_ERRORS as exc:
                complete = False
                self._warn("recording: cannot read the active incidents or their cameras' "
                           "consent (%s: %s); recordings running keep running",
                           type(exc).__name__, exc)
        here = {camera: why for camera, why in wanted.items() if self._hub.has_camera(camera)}
        if self._claim is not None:  # one node of several: it records what it pulls
            mine = await self._claim(frozenset(here))
            here = {camera: why for camera, why in here.items() if camera in mine}
        return here, complete

    async def _add_incident_cameras(self, wanted: dict[str, str], now: float) -> None:
        assert self._incidents is not None
        for incident in await self._incidents.active_incidents():
            for camera_id in incident.cameras:
                if camera_id in wanted or not self._hub.has_camera(camera_id):
                    continue
                if await self._consent_allows(camera_id, now):
                    wanted[camera_id] = f"linked to active {incident.kind} {incident.id}"

    async def _refresh_flags(self) -> None:
        flags = self._record_flags()
        if flags is None:
            return
        now = time.monotonic()
        if self._flags_read_at is not None and now - self._flags_read_at < self._flags_interval:
            return
        async with asyncio.timeout(STORE_TIMEOUT):
            self._flags = await flags.cameras_set_to_record()
        self._flags_read_at = now

    async def _still_wanted(self, camera_id: str) -> bool:
        wanted, complete = await self._desired()
        return camera_id in wanted or not complete

    async def reconcile(self) -> None:
        async with self._lock:
            wanted, complete = await self._desired()
            self.passes += 1
            # One read of the recordings disk per pass, on a thread: never a file call on the loop.
            disk = self._disk = await asyncio.to_thread(_disk_of, self._root)
            for camera_id in list(self._recorders):
                recorder = self._recorders[camera_id]
                if camera_id not in wanted:
                    if not complete:
                        continue  # maybe still wanted: an outage never ends a recording
                    del self._recorders[camera_id]
                    await self._stop(recorder, "no longer needed")
                elif self._may_restart(recorder, disk):
                    del self._recorders[camera_id]
                    full = recorder.state is RecorderState.DISK_FULL
                    await self._stop(recorder, "restarting")
                    if full:
                        await self._audit_safe("recording.resume", camera_id,
                                               {"free_bytes": disk.free})
            for camera_id, reason in wanted.items():
                if camera_id not in self._recorders:
                    await self._start(camera_id, reason)

    def _may_restart(self, recorder: CameraRecorder, disk: _Disk) -> bool:
        if recorder.state is RecorderState.STOPPED:
            return True  # it stopped itself (its stream was closed) and is wanted again
        if recorder.state is RecorderState.DISK_FULL:
            return disk.free >= self._min_free_bytes + self._resume_margin(disk.total)
        if recorder.state is RecorderState.FAILED:
            halted = self._halted_at.get(recorder.camera_id, 0.0)
            return self._clock() - halted >= RESTART_AFTER_FAILURE
        return False

    def _resume_margin(self, total: int) -> int:
        """Free space above the floor a stopped recording waits for, so it does not flap: a
        tenth of the floor, at least 64 MiB, but never more than a tenth of the disk (a small
        disk must resume too)."""
        return min(max(self._min_free_bytes // 10, 64 * 2**20), total // 10)

    async def _start(self, camera_id: str, reason: str) -> None:
        profiles = self._hub.profiles(camera_id)
        profile = "main" if "main" in profiles else profiles[0]
        stream = self._hub.get(camera_id, profile)
        # The recorder's writer thread writes its segment rows itself, off the event loop.
        recorder = CameraRecorder(stream, self._store.tables, self._root, self._settings,
                                  reason=reason, on_alert=self._alert,
                                  still_wanted=lambda: self._still_wanted(camera_id))
        recorder.min_free_bytes = self._min_free_bytes
        self._recorders[camera_id] = recorder
        recorder.start()
        log.info("camera %s: recording (%s)", camera_id, reason)
        await self._audit_safe("recording.start", camera_id, {"reason": reason, "profile": profile})

    async def _stop(self, recorder: CameraRecorder, why: str) -> None:
        halted = recorder.state in (RecorderState.DISK_FULL, RecorderState.FAILED)
        await recorder.aclose()
        if not halted:
            log.info("camera %s: recording stopped (%s)", recorder.camera_id, why)
            await self._audit_safe("recording.stop", recorder.camera_id,
                                   {"reason": why, "frames": recorder.frames_written,
                                    "segments": recorder.segments_started})

    def _alert(self, recorder: CameraRecorder, state: RecorderState, reason: str) -> None:
        """The recorder's (synchronous) alert callback: the audit write runs as a task."""
        self._halted_at[recorder.camera_id] = self._clock()
        log.error("camera %s: ALERT %s: %s", recorder.camera_id, state, reason)
        self.alerts.append({"time": self._clock(), "camera_id": recorder.camera_id,
                            "state": str(state), "reason": reason})
        write = self._audit_safe("recording.stop", recorder.camera_id,
                                 {"reason": reason, "alert": str(state)}, outcome=str(state))
        try:
            task = self._alert_audits.spawn(f"camera:{recorder.camera_id}:alert-audit", write)
        except RuntimeError:  # the manager has closed (spawn closed the coroutine)
            log.error("camera %s: the alert %s could not be audited: the recording manager "
                      "has stopped", recorder.camera_id, state)
            return
        self._alert_writes.add(task)
        task.add_done_callback(self._alert_writes.discard)

    async def _audit_safe(self, action: str, camera_id: str, details: dict[str, object],
                          outcome: str = "ok") -> None:
        try:
            await self._audit.append(actor="system", role="", action=action, camera_id=camera_id,
                                     outcome=outcome, details=details)
        except AuditWriteError:
            log.error("camera %s: %s could not be audited", camera_id, action)

    # -- recovery and retention -----------------------------------------------------------------

    async def recover(self) -> int:
        """Close segments a crash left open, keeping every whole frame on disk."""
        recovered = await recover_open_segments(self._store.tables, self._root, self._clock,
                                                self._store.run)
        for row, closed in recovered:
            await self._audit_safe("recording.recovered", row.camera_id,
                                   {"segment": row.id, "sha256": closed.sha256,
                                    "frames": closed.frames, "note": closed.note})
        self.recovered_segments += len(recovered)
        return len(recovered)

    async def enforce_retention(self) -> int:
        """Delete expired, unheld segments; returns how many."""
        now = self._clock()
        total = 0
        for camera_id in await self._store.call(EvidenceStore.cameras_with_segments):
            days = self._retention_days.get(camera_id, self._default_retention)
            expired = await self._store.call(EvidenceStore.evictable, camera_id,
                                             now - days * 86400.0)
            if not expired:
                continue
            total += len(await delete_segments(self._store.tables, self._root, expired,
                                               self._store.run))
            await self._audit_safe("evidence.evict", camera_id,
                                   {"segments": [row.id for row in expired], "retention_days": days,
                                    "sha256": [row.sha256 for row in expired][:50]})
        self.evicted_segments += total
        return total

    # -- observability --------------------------------------------------------------------------

    def recorder(self, camera_id: str) -> CameraRecorder | None:
        return self._recorders.get(camera_id)

    def stats(self) -> dict[str, object]:
        recorders = [recorder.stats() for recorder in self._recorders.values()]
        states = {str(r["state"]) for r in recorders}
        free = -1 if self._disk is None else self._disk.free  # as read by the last pass
        return {
            "state": "disk_full" if "disk_full" in states else (
                "failed" if "failed" in states else "ok"),
            "free_bytes": free,
            "min_free_bytes": self._min_free_bytes,
            "recorders": recorders,
            "alerts": list(self.alerts),
            "evicted_segments": self.evicted_segments,
            "recovered_segments": self.recovered_segments,
        }
