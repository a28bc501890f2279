"""Recording one camera: the original encoded frames, cut into segments at keyframes.

A ``CameraRecorder`` subscribes to the camera's ``Stream`` as ``recorder`` and writes what it
receives, unchanged, through a ``SegmentFile`` (``recording.segments``). All file work (open,
write, fsync, rename) and the segment's database rows run in the recorder's own writer thread,
one job after another; the event loop only batches frames (every ``flush_interval`` seconds or
``flush_bytes``) and hands them over, never waiting on the disk.

A new segment starts at the first keyframe after ``segment_seconds`` of camera time, after a
discontinuity (the camera reconnected) and after lost frames (the recorder's queue overflowed).
The writer thread checks the free space before it opens each segment and after each batch it
writes (one ``statvfs``, every ``flush_interval`` seconds or ``flush_bytes`` at most), so a disk
that fills during a long segment is noticed within a batch: below the floor, recording stops
with an alert (the callback logs and audits it), the segment being written is closed with what
it holds, and every segment already written stays as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recording.segments import SegmentFile, SegmentWriteError, segment_name
from recording.store import NewSegment, SegmentStore
from rtcc.errors import SourceUnavailable, StreamClosed
from rtcc.hub import Stream, Subscription
from rtcc.media import VIDEO_CLOCK_RATE, EncodedFrame

log = logging.getLogger(__name__)

MAX_INFLIGHT = 16
"""Write jobs queued for the writer thread before the recorder stops reading (then the hub's
bounded queue drops until the next keyframe and a new segment starts)."""


class RecorderState(enum.StrEnum):
    STARTING = "starting"
    RECORDING = "recording"
    WAITING = "waiting"
    DISK_FULL = "disk_full"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class RecorderSettings:
    segment_seconds: float = 10.0
    min_free_bytes: int = 1024**3
    flush_interval: float = 0.5
    flush_bytes: int = 512 * 1024
    queue_frames: int = 900
    """Frames the recorder's subscription may fall behind (30 s at 30 fps)."""


AlertCallback = Callable[["CameraRecorder", RecorderState, str], None]
StillWanted = Callable[[], Awaitable[bool]]


async def _always() -> bool:
    return True


class LowDiskSpace(Exception):
    """The writer found less free space than the floor after a batch (the batch was written)."""

    def __init__(self, free: int) -> None:
        super().__init__(f"{free} bytes free")
        self.free = free


def free_bytes_of(root: Path) -> int:
    """Free bytes on the disk holding ``root``; 0 when it cannot be read (treated as full)."""
    try:
        return shutil.disk_usage(root).free
    except OSError:
        return 0


class _Writer:
    """The writer thread's side: the open SegmentFile and its database row."""

    def __init__(self, store: SegmentStore, root: Path, min_free_bytes: int) -> None:
        self.store = store
        self.root = root
        self.min_free_bytes = min_free_bytes
        self.file: SegmentFile | None = None
        self.segment_id: int | None = None
        self.broken = ""
        self.write_seconds = 0.0
        self.segments_closed = 0
        self.bytes_closed = 0
        self.last_free = -1

    def open(self, new: NewSegment) -> None:
        started = time.perf_counter()
        self.broken = ""
        self.last_free = free_bytes_of(self.root)
        if self.last_free < self.min_free_bytes:
            raise LowDiskSpace(self.last_free)
        self.file = SegmentFile(self.root, new.path)
        try:
            self.segment_id = self.store.open_segment(new, time.time())
        except Exception:
            self.file.close("abandoned")
            raise
        self.write_seconds += time.perf_counter() - started

    def write(self, frames: list[EncodedFrame]) -> None:
        if self.file is None or self.broken:
            return
        started = time.perf_counter()
        try:
            self.file.write(frames)
            free = self.last_free = free_bytes_of(self.root)
        except SegmentWriteError as exc:
            self.broken = str(exc)
            raise
        finally:
            self.write_seconds += time.perf_counter() - started
        if free < self.min_free_bytes:
            raise LowDiskSpace(free)

    def close(self, note: str) -> None:
        if self.file is None or self.segment_id is None:
            return
        started = time.perf_counter()
        file, segment_id = self.file, self.segment_id
        self.file, self.segment_id = None, None
        if self.broken:
            note = f"{note}; cut short: {self.broken}".lstrip("; ")
        closed = file.close(note)
        self.store.close_segment(segment_id, closed, time.time())
        self.segments_closed += 1
        self.bytes_closed += closed.bytes
        self.write_seconds += time.perf_counter() - started


@dataclass(slots=True)
class _Current:
    pts_start: int
    capture_start: float
    last_pts: int
    frames: int = 0


class CameraRecorder:
    """Records one camera profile until ``aclose`` (or a full disk)."""

    def __init__(
        self,
        stream: Stream,
        store: SegmentStore,
        root: Path,
        settings: RecorderSettings,
        *,
        reason: str,
        on_alert: AlertCallback,
        still_wanted: StillWanted = _always,
    ) -> None:
        self.camera_id = stream.key.camera_id
        self.profile = stream.key.profile
        self.reason = reason
        self.settings = settings
        self._stream = stream
        self._root = root
        self._on_alert = on_alert
        self._still_wanted = still_wanted
        self._writer = _Writer(store, root, settings.min_free_bytes)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"recorder-{self.camera_id}")
        self._inflight: set[asyncio.Future[None]] = set()
        self._pending: list[EncodedFrame] = []
        self._pending_bytes = 0
        self._flush_timer: asyncio.TimerHandle | None = None
        self._current: _Current | None = None
        self._gap_note = ""
        self._segment_note = ""
        self._last_written: tuple[float, int] | None = None
        self._task: asyncio.Task[None] | None = None
        self._sub: Subscription | None = None
        self.state = RecorderState.STARTING
        self.state_reason = ""
        self.started = time.time()
        self.frames_written = 0
        self.bytes_written = 0
        self.frames_skipped = 0
        self.frames_lost = 0
        self.segments_started = 0

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"camera:{self.camera_id}:recorder")

    @property
    def min_free_bytes(self) -> int:
        """The free-space floor; may be changed while recording (the writer reads it)."""
        return self._writer.min_free_bytes

    @min_free_bytes.setter
    def min_free_bytes(self, value: int) -> None:
        self._writer.min_free_bytes = value

    @property
    def segments_closed(self) -> int:
        return self._writer.segments_closed

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def aclose(self) -> None:
        """Write what is queued, close the segment, stop. Idempotent."""
        task = self._task
        if task is None:
            return
        if not task.done():
            task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
        except Exception:
            log.exception("camera %s: the recorder ended with an error", self.camera_id)
        if self.state not in (RecorderState.DISK_FULL, RecorderState.FAILED):
            self._set_state(RecorderState.STOPPED, "recording stopped")
        self._executor.shutdown(wait=False)

    async def _run(self) -> None:
        backoff = 1.0
        try:
            while self.state not in (RecorderState.DISK_FULL, RecorderState.FAILED):
                try:
                    sub = await self._stream.subscribe(
                        "recorder", maxsize=self.settings.queue_frames, wait=False)
                except (SourceUnavailable, StreamClosed) as exc:
                    self._set_state(RecorderState.WAITING, str(exc))
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                backoff = 1.0
                self._sub = sub
                try:
                    await self._consume(sub)
                finally:
                    self._drain(sub)
                    sub.close("recorder stopped")
                    self._sub = None
                    self._end_segment("the stream ended")
                if self.state in (RecorderState.DISK_FULL, RecorderState.FAILED):
                    break
                # Closed from outside (consent revoked, camera removed): ask before going on.
                if not await self._still_wanted():
                    self._set_state(RecorderState.STOPPED, "no longer needed")
                    break
                self._set_state(RecorderState.WAITING, "the stream closed; subscribing again")
                await asyncio.sleep(1.0)
        finally:
            self._end_segment("recording stopped")
            await self._wait_writes()

    async def _consume(self, sub: Subscription) -> None:
        dropped = sub.frames_dropped
        while self.state not in (RecorderState.DISK_FULL, RecorderState.FAILED):
            while len(self._inflight) >= MAX_INFLIGHT:
                await asyncio.wait(set(self._inflight), return_when=asyncio.FIRST_COMPLETED)
            try:
                frame = await sub.get()
            except StreamClosed:
                return
            if sub.frames_dropped != dropped:
                lost = sub.frames_dropped - dropped
                dropped = sub.frames_dropped
                self.frames_lost += lost
                self._gap_note = f"{lost} frames were lost before this segment (writer behind)"
                self._end_segment("frames were lost after this segment")
            self._on_frame(frame)

    def _drain(self, sub: Subscription) -> None:
        """Frames already queued when recording stops are written too."""
        with contextlib.suppress(StreamClosed):
            while self.state not in (RecorderState.DISK_FULL, RecorderState.FAILED):
                frame = sub.get_nowait()
                if frame is None:
                    break
                self._on_frame(frame)

    # -- frames and segments --------------------------------------------------------------------

    def _on_frame(self, frame: EncodedFrame) -> None:
        last = self._last_written
        if last is not None and not frame.discontinuity and (
            frame.capture_time < last[0] or (frame.capture_time, frame.pts) == last
        ):
            self.frames_skipped += 1  # replayed from the hub's GOP cache: already written
            return
        current = self._current
        if current is not None and (frame.discontinuity or frame.pts < current.last_pts):
            self._end_segment("the camera's timeline restarted")
            current = None
        if current is None:
            if not frame.keyframe:
                self.frames_skipped += 1
                return
            if not self._begin_segment(frame):
                return
        elif frame.keyframe and (
            frame.pts - current.pts_start
            >= self.settings.segment_seconds * VIDEO_CLOCK_RATE
        ):
            self._end_segment("")
            if not self._begin_segment(frame):
                return
        assert self._current is not None
        self._current.last_pts = frame.pts
        self._current.frames += 1
        self._last_written = (frame.capture_time, frame.pts)
        self._pending.append(frame)
        self._pending_bytes += len(frame.data)
        self.frames_written += 1
        self.bytes_written += len(frame.data)
        if self._pending_bytes >= self.settings.flush_bytes:
            self._flush()
        elif self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(
                self.settings.flush_interval, self._flush)

    def _begin_segment(self, frame: EncodedFrame) -> bool:
        # The writer thread checks free space before it opens the file (LowDiskSpace halts).
        new = NewSegment(
            camera_id=self.camera_id, profile=self.profile, origin="server",
            path=segment_name(self.camera_id, frame.codec, frame.capture_time),
            codec=frame.codec, utc_start=frame.capture_time, pts_start=frame.pts,
            discontinuity=frame.discontinuity or bool(self._gap_note),
        )
        self._segment_note, self._gap_note = self._gap_note, ""
        self._current = _Current(frame.pts, frame.capture_time, frame.pts)
        self.segments_started += 1
        self._submit(self._writer.open, new)
        self._set_state(RecorderState.RECORDING, self.reason)
        return True

    def _end_segment(self, note: str) -> None:
        if self._current is None:
            return
        self._flush()
        self._current = None
        notes = (self._segment_note, note)
        self._segment_note = ""
        self._submit(self._writer.close, "; ".join(part for part in notes if part))

    def _flush(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if not self._pending:
            return
        batch, self._pending, self._pending_bytes = self._pending, [], 0
        self._submit(self._writer.write, batch)

    def _submit(self, function: Callable[..., None], *args: Any) -> None:
        future = asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
        self._inflight.add(future)
        future.add_done_callback(self._job_done)

    def _job_done(self, future: asyncio.Future[None]) -> None:
        self._inflight.discard(future)
        if future.cancelled():
            return
        exc = future.exception()
        if exc is None:
            return
        if isinstance(exc, LowDiskSpace):
            self._halt(RecorderState.DISK_FULL, self._disk_full(exc.free))
        elif isinstance(exc, SegmentWriteError | OSError):
            full = 0 <= self._writer.last_free < self.min_free_bytes
            self._halt(RecorderState.DISK_FULL if full else RecorderState.FAILED,
                       f"writing the segment failed ({exc}); recording stopped, the frames "
                       "written before were kept")
        else:
            log.error("camera %s: recording job failed: %r", self.camera_id, exc)
            self._halt(RecorderState.FAILED, f"recording failed: {exc}")

    async def _wait_writes(self) -> None:
        while self._inflight:
            await asyncio.wait(set(self._inflight))

    def _halt(self, state: RecorderState, reason: str) -> None:
        if self.state in (RecorderState.DISK_FULL, RecorderState.FAILED):
            return
        self._end_segment("recording stopped: " + str(state))
        self._set_state(state, reason)
        if self._sub is not None:
            self._sub.close(reason)
        self._on_alert(self, state, reason)

    def _set_state(self, state: RecorderState, reason: str) -> None:
        if state is self.state and reason == self.state_reason:
            return
        self.state = state
        self.state_reason = reason

    def _disk_full(self, free: int) -> str:
        return (f"only {free // 2**20} MiB free on the recordings disk (floor "
                f"{self.min_free_bytes // 2**20} MiB); recording stopped, nothing already "
                "recorded was lost")

    # -- observability --------------------------------------------------------------------------

    def stats(self) -> dict[str, object]:
        current = self._current
        return {
            "camera_id": self.camera_id,
            "profile": self.profile,
            "state": str(self.state),
            "reason": self.state_reason,
            "why": self.reason,
            "frames": self.frames_written,
            "bytes": self.bytes_written,
            "frames_skipped": self.frames_skipped,
            "frames_lost": self.frames_lost,
            "segments_started": self.segments_started,
            "segments_closed": self._writer.segments_closed,
            "writer_seconds": round(self._writer.write_seconds, 4),
            "writes_queued": len(self._inflight),
            "current_segment_seconds": (
                round((current.last_pts - current.pts_start) / VIDEO_CLOCK_RATE, 3)
                if current else None
            ),
        }
