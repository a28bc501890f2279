"""Segment files: the camera's original encoded bytes, and a frame index beside them.

A segment is ``NAME.h264`` (or ``.h265``): the access units exactly as received (Annex-B),
concatenated, starting at a keyframe. ``NAME.idx`` lists each frame as a fixed-size record
(byte offset, size, camera pts on the 90 kHz clock, server UTC capture time, keyframe flag), so a
time range can be cut at frame precision without parsing the bitstream. While being written the
files carry a ``.part`` suffix; closing fsyncs both, renames them and fsyncs the folder.

The SHA-256 of the data (and of the index) is computed as the bytes are written. A write that
fails (disk full) is rolled back to the last complete frame, so a segment on disk is always a
prefix of whole frames whose hash is known.

Every path handed to the file system is relative to the recordings root (the server's evidence
folder, the agent's buffer folder) and checked to stay inside it (``contained``); nothing from a
request is ever used as a path.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from recording.store import ClosedSegment
from rtcc.errors import RtccError
from rtcc.files import FILE_MODE, private_dir
from rtcc.media import EncodedFrame

INDEX_ENTRY = struct.Struct("<QIqdB")
"""offset (u64), size (u32), pts (i64, 90 kHz), capture time (f64, UTC epoch s), keyframe (u8)."""
CHUNK = 1024 * 1024
EXTENSIONS = {"h264": ".h264", "h265": ".h265"}


class UnsafePath(RtccError):
    """A stored path would leave the evidence folder (or is a link); it is never opened."""


class SegmentWriteError(RtccError):
    """Writing a segment failed (usually a full disk); what was written before is kept."""


@dataclass(frozen=True, slots=True)
class FrameEntry:
    offset: int
    size: int
    pts: int
    capture_time: float
    keyframe: bool

    def pack(self) -> bytes:
        return INDEX_ENTRY.pack(self.offset, self.size, self.pts, self.capture_time,
                                int(self.keyframe))


def contained(root: Path, relative: str) -> Path:
    """``root/relative`` resolved, or ``UnsafePath`` if it leaves ``root`` or is a link."""
    if not relative or relative.startswith(("/", "\\")) or "\x00" in relative:
        raise UnsafePath("not a relative path inside the evidence folder")
    base = root.resolve()
    candidate = base / relative
    resolved = candidate.resolve()
    if not resolved.is_relative_to(base) or resolved == base:
        raise UnsafePath("the path leaves the evidence folder")
    if candidate.is_symlink():
        raise UnsafePath("the path is a symbolic link")
    return resolved


def segment_name(camera_id: str, codec: str, start: float, label: str = "") -> str:
    """A new relative path ``recordings/CAMERA/DATE/CAMERA-TIME[-LABEL]-RANDOM.EXT``."""
    moment = dt.datetime.fromtimestamp(start, tz=dt.UTC)
    stamp = moment.strftime("%Y%m%dT%H%M%S") + f"{moment.microsecond // 1000:03d}Z"
    suffix = f"-{label}" if label else ""
    extension = EXTENSIONS.get(codec, ".bin")
    return (f"recordings/{camera_id}/{moment:%Y-%m-%d}/"
            f"{camera_id}-{stamp}{suffix}-{secrets.token_hex(3)}{extension}")


def index_path_of(data_path: Path) -> Path:
    return data_path.with_suffix(".idx")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class SegmentFile:
    """One segment being written. Confined to one writer thread; never used on the loop."""

    def __init__(self, root: Path, relative: str) -> None:
        self.relative = relative
        self.final_path = contained(root, relative)
        private_dir(self.final_path.parent)
        self.data_path = self.final_path.with_name(self.final_path.name + ".part")
        self.index_path = index_path_of(self.final_path).with_name(
            index_path_of(self.final_path).name + ".part")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        self._data_fd = os.open(self.data_path, flags, FILE_MODE)
        try:
            self._index_fd = os.open(self.index_path, flags, FILE_MODE)
        except OSError:
            os.close(self._data_fd)
            raise
        self._hash = hashlib.sha256()
        self._index_hash = hashlib.sha256()
        self.size = 0
        self.index_size = 0
        self.frames = 0
        self.pts_start: int | None = None
        self.pts_end: int | None = None
        self.utc_start = 0.0
        self.utc_end = 0.0
        self.closed = False

    def write(self, frames: Sequence[EncodedFrame]) -> None:
        """Append whole frames; on failure roll back to the previous frame boundary."""
        if not frames:
            return
        entries = []
        offset = self.size
        for frame in frames:
            entries.append(FrameEntry(offset, len(frame.data), frame.pts, frame.capture_time,
                                      frame.keyframe).pack())
            offset += len(frame.data)
        data = b"".join(frame.data for frame in frames)
        index = b"".join(entries)
        data_hash, index_hash = self._hash.copy(), self._index_hash.copy()
        try:
            _write_all(self._data_fd, data)
            _write_all(self._index_fd, index)
        except OSError as exc:
            self._rollback()
            raise SegmentWriteError(f"{exc.strerror or exc}") from exc
        data_hash.update(data)
        index_hash.update(index)
        self._hash, self._index_hash = data_hash, index_hash
        self.size += len(data)
        self.index_size += len(index)
        if self.pts_start is None:
            self.pts_start = frames[0].pts
            self.utc_start = frames[0].capture_time
        self.pts_end = frames[-1].pts
        self.utc_end = frames[-1].capture_time
        self.frames += len(frames)

    def _rollback(self) -> None:
        for fd, size in ((self._data_fd, self.size), (self._index_fd, self.index_size)):
            try:
                os.ftruncate(fd, size)
                os.lseek(fd, size, os.SEEK_SET)
            except OSError:
                pass  # the close() that follows fsyncs what is there; the index bounds it

    def close(self, note: str = "") -> ClosedSegment:
        """fsync, rename to the final name, fsync the folder. Idempotent."""
        if not self.closed:
            self.closed = True
            try:
                os.fsync(self._data_fd)
                os.fsync(self._index_fd)
            finally:
                os.close(self._data_fd)
                os.close(self._index_fd)
            os.replace(self.data_path, self.final_path)
            os.replace(self.index_path, index_path_of(self.final_path))
            fsync_dir(self.final_path.parent)
        return ClosedSegment(
            pts_start=self.pts_start, pts_end=self.pts_end,
            utc_start=self.utc_start, utc_end=self.utc_end if self.frames else self.utc_start,
            bytes=self.size, frames=self.frames, sha256=self._hash.hexdigest(),
            index_sha256=self._index_hash.hexdigest(), path=self.relative, note=note,
        )


def parse_index(blob: bytes) -> list[FrameEntry]:
    count = len(blob) // INDEX_ENTRY.size
    entries = []
    for i in range(count):
        offset, size, pts, capture, key = INDEX_ENTRY.unpack_from(blob, i * INDEX_ENTRY.size)
        entries.append(FrameEntry(offset, size, pts, capture, bool(key)))
    return entries


def read_index(data_path: Path) -> list[FrameEntry]:
    return parse_index(index_path_of(data_path).read_bytes())


def iter_frames(data_path: Path, entries: Sequence[FrameEntry]) -> Iterator[bytes]:
    """The bytes of the given frames of a segment, in order."""
    with open(data_path, "rb") as handle:
        for entry in entries:
            handle.seek(entry.offset)
            data = handle.read(entry.size)
            if len(data) != entry.size:
                raise SegmentWriteError(f"{data_path.name}: frame at {entry.offset} is cut short")
            yield data


def hash_file(path: Path, progress: Callable[[int], None] | None = None) -> tuple[str, int]:
    """SHA-256 hex digest and size of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if progress is not None:
                progress(len(chunk))
    return digest.hexdigest(), size


def recover_part(root: Path, relative: str) -> ClosedSegment | None:
    """Close a segment a crash left open: keep the whole frames its index vouches for.

    Returns None when nothing of it is on disk.
    """
    final_path = contained(root, relative)
    data_path = final_path.with_name(final_path.name + ".part")
    index_part = index_path_of(final_path).with_name(index_path_of(final_path).name + ".part")
    if not data_path.exists() or not index_part.exists():
        return None
    data_size = data_path.stat().st_size
    entries = parse_index(index_part.read_bytes())
    kept: list[FrameEntry] = []
    expected = 0
    for entry in entries:
        if entry.offset != expected or entry.offset + entry.size > data_size:
            break
        kept.append(entry)
        expected = entry.offset + entry.size
    # Segments start at a keyframe: anything before the first one cannot be decoded.
    with open(data_path, "r+b") as handle:
        handle.truncate(expected)
        handle.flush()
        os.fsync(handle.fileno())
    index_blob = b"".join(entry.pack() for entry in kept)
    with open(index_part, "wb") as handle:
        handle.write(index_blob)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(data_path, final_path)
    os.replace(index_part, index_path_of(final_path))
    fsync_dir(final_path.parent)
    sha, size = hash_file(final_path)
    lost = data_size - expected
    note = "recovered after an interruption"
    if lost:
        note += f"; {lost} bytes of an incomplete last frame were dropped"
    return ClosedSegment(
        pts_start=kept[0].pts if kept else None, pts_end=kept[-1].pts if kept else None,
        utc_start=kept[0].capture_time if kept else 0.0,
        utc_end=kept[-1].capture_time if kept else None, bytes=size, frames=len(kept),
        sha256=sha, index_sha256=hashlib.sha256(index_blob).hexdigest(), path=relative,
        state="recovered", note=note,
    )


def remove_segment_files(root: Path, relative: str) -> None:
    """Delete a segment's data and index (retention); missing files are not an error."""
    data_path = contained(root, relative)
    for path in (data_path, index_path_of(data_path)):
        path.unlink(missing_ok=True)
