"""Resumable uploads of recorded segments from an owner's agent, for an approved footage request.

Contract for the agent (role ``agent``, its account's ``owner_id`` owns the camera; bearer token):

1. Find work: when an item is approved while the agent is connected, the server sends it an
   ``upload_footage`` command on its control connection (``rtcc.agent_protocol``); after
   every (re)connection the agent also asks ``GET /api/footage-requests``, which lists the
   requests with approved items of the agent's owner (``cameras[].status`` is ``approved``,
   ``receiving`` or ``received``; ``start`` and ``end`` are UTC epoch seconds).
2. Announce one segment: ``POST /api/footage-requests/{request_id}/uploads`` with JSON::

       {"camera_id": "cam1", "sequence": 0, "codec": "h264", "size": 1234567,
        "sha256": "<hex SHA-256 of the segment bytes, computed when the agent recorded them>",
        "frames": [[offset, size, pts, capture_time, keyframe], ...]}

   The segment is the camera's access units, unchanged, Annex-B, concatenated, starting with a
   keyframe (SPS/PPS in-band). ``frames`` indexes it: byte offset and size of each access unit
   (contiguous from 0, summing to ``size``), its 90 kHz pts, the UTC epoch time it was captured,
   and 1/0 for keyframe. The frames must overlap the request's time range. ``sequence`` numbers
   the agent's segments for this camera and request (0, 1, 2...).
   Answer: ``201 {"upload_id", "offset": 0, "size", "state": "receiving"}`` (the item's status
   becomes ``receiving``). Announcing the same
   sequence again with the same hash resumes: ``200`` with the ``offset`` already received (or
   ``state: "complete"``). The same sequence with another hash is ``409``.
3. Send bytes: ``PATCH /api/uploads/{upload_id}`` with header ``Upload-Offset: N`` (N = bytes the
   server has), body ``application/octet-stream``, at most 8 MiB per call. Answer ``200
   {"offset", "state"}``. A wrong offset is ``409 {"offset": <the server's>}``: continue from
   there. ``GET /api/uploads/{upload_id}`` tells the offset after a lost connection.
4. On the last byte the server hashes the whole segment: if the SHA-256 or the frame table does
   not match, the bytes are discarded and the answer is ``422`` (send again from offset 0);
   otherwise the segment is stored as evidence (``state: "complete"``, ``segment_id``).
5. When every segment of a camera is sent: ``POST /api/footage-requests/{id}/cameras/{camera}/
   complete``; the item's status becomes ``received``.
6. When the agent cannot deliver (the range is not, or no longer, in its buffer; its copy no
   longer matches the capture hash): ``POST /api/footage-requests/{id}/cameras/{camera}/fail``
   with ``{"reason": "..."}``; the item's status becomes ``failed`` with that reason, and it
   accepts no more uploads (segments already received stay).

A declined, pending or expired item accepts nothing (``409``), and nothing is written to disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evidence.requests import GRANTED, FootageRequest, FootageRequests
from evidence.store import AsyncEvidenceStore, EvidenceStore
from recording.segments import (
    FrameEntry,
    contained,
    fsync_dir,
    hash_file,
    index_path_of,
    segment_name,
)
from recording.store import ClosedSegment, NewSegment
from rtcc.errors import RtccError
from rtcc.files import FILE_MODE, open_private, private_dir

UPLOAD_ID = re.compile(r"^up-[0-9a-f]{24}$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
MAX_SEGMENT_BYTES = 512 * 1024 * 1024
MAX_FRAMES = 20_000
MAX_CHUNK = 8 * 1024 * 1024
RANGE_SLACK = 60.0
"""Seconds a segment may start before / end after the requested range (GOP alignment)."""


class UploadError(RtccError):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = extra


@dataclass(frozen=True, slots=True)
class Declaration:
    camera_id: str
    sequence: int
    codec: str
    size: int
    sha256: str
    frames: tuple[FrameEntry, ...]

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Declaration:
        def fail(message: str) -> UploadError:
            return UploadError(400, message)

        camera_id = data.get("camera_id")
        sequence = data.get("sequence")
        codec = data.get("codec", "h264")
        size = data.get("size")
        sha = data.get("sha256")
        frames = data.get("frames")
        if not isinstance(camera_id, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}",
                                                              camera_id):
            raise fail("camera_id must be a camera id")
        if not isinstance(sequence, int) or isinstance(sequence, bool) or not (
                0 <= sequence < 10**9):
            raise fail("sequence must be a whole number from 0")
        if codec not in ("h264", "h265"):
            raise fail("codec must be h264 or h265")
        if not isinstance(size, int) or isinstance(size, bool) or not (
                0 < size <= MAX_SEGMENT_BYTES):
            raise fail(f"size must be 1 to {MAX_SEGMENT_BYTES} bytes")
        if not isinstance(sha, str) or not SHA256_HEX.fullmatch(sha):
            raise fail("sha256 must be 64 lowercase hex digits")
        if not isinstance(frames, list) or not 0 < len(frames) <= MAX_FRAMES:
            raise fail(f"frames must list 1 to {MAX_FRAMES} frames")
        entries: list[FrameEntry] = []
        expected = 0
        for item in frames:
            if not (isinstance(item, list) and len(item) == 5
                    and all(isinstance(v, int | float) and not isinstance(v, bool)
                            for v in item)):
                raise fail("each frame is [offset, size, pts, capture_time, keyframe]")
            offset, length, pts, capture, key = item
            if offset != expected or not isinstance(length, int) or length <= 0:
                raise fail("frames must be contiguous from offset 0 with positive sizes")
            entries.append(FrameEntry(int(offset), int(length), int(pts), float(capture),
                                      bool(key)))
            expected += int(length)
        if expected != size:
            raise fail(f"the frames add up to {expected} bytes, size says {size}")
        if not entries[0].keyframe:
            raise fail("a segment must start with a keyframe")
        return cls(camera_id, sequence, codec, size, sha, tuple(entries))

    def meta(self) -> str:
        return json.dumps([[e.offset, e.size, e.pts, e.capture_time, int(e.keyframe)]
                           for e in self.frames], separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Upload:
    id: str
    request_id: str
    camera_id: str
    sequence: int
    sha256: str
    size: int
    codec: str
    received: int
    state: str
    segment_id: int | None

    def as_json(self) -> dict[str, Any]:
        return {"upload_id": self.id, "request_id": self.request_id,
                "camera_id": self.camera_id, "sequence": self.sequence, "size": self.size,
                "offset": self.received, "state": self.state, "segment_id": self.segment_id}


def _frames_from_meta(meta: str) -> list[FrameEntry]:
    return [FrameEntry(int(o), int(s), int(p), float(c), bool(k)) for o, s, p, c, k in
            json.loads(meta)]


class Uploads:
    """The public methods that read or write are async: their statements (the ``_``-prefixed
    methods) run on the evidence store's thread, the file work on a worker thread."""

    def __init__(self, store: AsyncEvidenceStore, root: Path, requests: FootageRequests
                 ) -> None:
        self._db = store
        self._store: EvidenceStore = store.tables
        self._root = root
        self._requests = requests
        self._locks: dict[str, asyncio.Lock] = {}

    def _row(self, upload_id: str) -> Any:
        return self._store.fetchone("SELECT * FROM uploads WHERE id = ?", (upload_id,))

    async def get(self, upload_id: str) -> Upload | None:
        if not UPLOAD_ID.fullmatch(upload_id):
            return None
        return await self._db.run(self._get, upload_id)

    def _get(self, upload_id: str) -> Upload | None:
        row = self._row(upload_id)
        if row is None:
            return None
        return Upload(row["id"], row["request_id"], row["camera_id"], int(row["sequence"]),
                      row["sha256"], int(row["size"]), row["codec"], int(row["received"]),
                      row["state"], row["segment_id"])

    def check_granted(self, request: FootageRequest, camera_id: str, owner_id: str | None,
                      now: float) -> None:
        item = request.item(camera_id)
        if item is None or owner_id is None or item.owner_id != owner_id:
            raise UploadError(404, f"camera {camera_id!r} of your owner is not in this request")
        if item.status not in GRANTED:
            raise UploadError(409, f"the owner's decision for camera {camera_id!r} is "
                                   f"{item.status!r}: nothing may be uploaded")
        if item.valid_until is not None and item.valid_until < now:
            raise UploadError(409, "the approval of this request has expired")

    async def begin(self, request: FootageRequest, declaration: Declaration, now: float
                    ) -> tuple[Upload, bool]:
        """Create (True) or resume (False) the upload of one declared segment."""
        first = declaration.frames[0].capture_time
        last = declaration.frames[-1].capture_time
        if last < request.start - RANGE_SLACK or first > request.end + RANGE_SLACK:
            raise UploadError(422, "this segment lies outside the request's time range")
        return await self._db.run(self._begin, request, declaration, now)

    def _begin(self, request: FootageRequest, declaration: Declaration, now: float
               ) -> tuple[Upload, bool]:
        existing = self._store.fetchone(
            "SELECT id FROM uploads WHERE request_id = ? AND camera_id = ? AND sequence = ?",
            (request.id, declaration.camera_id, declaration.sequence))
        if existing is not None:
            upload = self._get(existing["id"])
            assert upload is not None
            if upload.sha256 != declaration.sha256 or upload.size != declaration.size:
                raise UploadError(409, "this sequence was announced with another hash or size")
            return upload, False
        upload_id = f"up-{secrets.token_hex(12)}"
        self._store.execute(
            "INSERT INTO uploads (id, request_id, camera_id, sequence, sha256, size, codec, meta,"
            " created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (upload_id, request.id, declaration.camera_id, declaration.sequence,
             declaration.sha256, declaration.size, declaration.codec, declaration.meta(), now,
             now),
        )
        upload = self._get(upload_id)
        assert upload is not None
        return upload, True

    def _partial(self, upload_id: str) -> Path:
        return contained(self._root, f"uploads/{upload_id}.part")

    async def append(self, upload: Upload, offset: int, data: bytes, now: float) -> Upload:
        """Write ``data`` at ``offset``; on the last byte, check the hash and store the segment."""
        lock = self._locks.setdefault(upload.id, asyncio.Lock())
        async with lock:
            current = await self.get(upload.id)
            assert current is not None
            if current.state == "complete":
                return current
            if offset != current.received:
                raise UploadError(409, f"expected Upload-Offset {current.received}",
                                  offset=current.received)
            if current.received + len(data) > current.size:
                raise UploadError(413, "more bytes than the declared size")
            path = self._partial(current.id)
            await asyncio.to_thread(_write_at, path, offset, data)
            received = offset + len(data)
            await self._db.call(EvidenceStore.execute,
                                "UPDATE uploads SET received = ?, updated = ? WHERE id = ?",
                                (received, now, current.id))
            if received < current.size:
                return await self.get(current.id) or current
            row = await self._db.run(self._row, current.id)
            try:
                new, closed = await asyncio.to_thread(self._finish, current, path, row["meta"])
            except UploadError:
                await self._db.call(EvidenceStore.execute,
                                    "UPDATE uploads SET received = 0, updated = ? WHERE id = ?",
                                    (now, current.id))
                raise
            segment_id = await self._db.call(EvidenceStore.add_closed_segment, new, closed, now)
            await self._db.call(EvidenceStore.execute,
                                "UPDATE uploads SET state = 'complete', segment_id = ?,"
                                " updated = ? WHERE id = ?", (segment_id, now, current.id))
            self._locks.pop(upload.id, None)
            done = await self.get(current.id)
            assert done is not None
            return done

    def _finish(self, upload: Upload, path: Path, meta: str
                ) -> tuple[NewSegment, ClosedSegment]:
        """Hash the received segment and move it into place (its row is for the caller to
        add), or discard it and raise 422."""
        frames = _frames_from_meta(meta)
        sha, size = hash_file(path)
        problem = ""
        if sha != upload.sha256 or size != upload.size:
            problem = (f"the received bytes hash to {sha}, not the announced {upload.sha256}; "
                       "they were discarded: send the segment again from offset 0")
        else:
            problem = _frames_problem(path, frames)
        if problem:
            path.unlink(missing_ok=True)
            raise UploadError(422, problem, offset=0)
        relative = segment_name(upload.camera_id, upload.codec, frames[0].capture_time,
                                f"agent-{upload.request_id}-{upload.sequence}")
        final = contained(self._root, relative)
        private_dir(final.parent)
        index_blob = b"".join(entry.pack() for entry in frames)
        index_path = index_path_of(final)
        with open_private(index_path, exclusive=True) as handle:
            handle.write(index_blob)
            handle.flush()
            os.fsync(handle.fileno())
        shutil.move(path, final)
        fsync_dir(final.parent)
        new = NewSegment(camera_id=upload.camera_id, profile="main", origin="agent",
                         path=relative, codec=upload.codec, utc_start=frames[0].capture_time,
                         pts_start=frames[0].pts, discontinuity=upload.sequence == 0,
                         request_id=upload.request_id)
        closed = ClosedSegment(
            pts_start=frames[0].pts, pts_end=frames[-1].pts, utc_start=frames[0].capture_time,
            utc_end=frames[-1].capture_time, bytes=size, frames=len(frames), sha256=sha,
            index_sha256=hashlib.sha256(index_blob).hexdigest(), path=relative,
            note=f"uploaded by the owner's agent for footage request {upload.request_id}",
        )
        return new, closed

    async def uploads_of(self, request_id: str, camera_id: str) -> list[Upload]:
        return await self._db.run(self._uploads_of, request_id, camera_id)

    def _uploads_of(self, request_id: str, camera_id: str) -> list[Upload]:
        rows = self._store.fetchall(
            "SELECT id FROM uploads WHERE request_id = ? AND camera_id = ? ORDER BY sequence",
            (request_id, camera_id))
        found = [self._get(row["id"]) for row in rows]
        return [upload for upload in found if upload is not None]


def _write_at(path: Path, offset: int, data: bytes) -> None:
    private_dir(path.parent)
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW
    fd = os.open(path, flags, FILE_MODE)
    try:
        os.ftruncate(fd, offset)  # drop anything a broken earlier attempt left past the offset
        os.lseek(fd, offset, os.SEEK_SET)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _frames_problem(path: Path, frames: Sequence[FrameEntry]) -> str:
    """Each announced frame must begin with an Annex-B start code."""
    with open(path, "rb") as handle:
        for number, entry in enumerate(frames):
            handle.seek(entry.offset)
            head = handle.read(4)
            if not (head.startswith(b"\x00\x00\x01") or head == b"\x00\x00\x00\x01"):
                return (f"frame {number} at byte {entry.offset} does not start with an Annex-B "
                        "start code; the segment was discarded")
    return ""
