"""Clip export: recorded segments -> MP4 (remuxed, never re-encoded) + signed manifest, one file.

1. The segments of the camera that overlap the range are re-hashed; one that no longer matches
   the SHA-256 recorded when it was written stops the export (and is named).
2. Frames are chosen from the segments' frame indexes: from the keyframe at or before the start
   (at or after it when a grant covers only the range) to the last frame before the end. Their
   bytes, unchanged, are muxed by PyAV into MPEG-TS with the camera's timestamps, then FFmpeg
   copies the stream into MP4 (``-c copy``). The MP4 is checked to hold exactly the chosen
   frames.
3. Optionally a watermarked copy (case, camera, running UTC time burned in; re-encoded) is made
   as a separate derivative; the clip itself is never touched.
4. ``manifest.json`` names the sources and their hashes, the requested and actual time range,
   camera, owner, requester, case, the grant allowing the export, tool versions and the hash
   of every file; it is signed with the server's Ed25519 key (``manifest.sig``). Everything
   goes into one tar file with the public key: ``manifest.json``, ``manifest.sig``,
   ``public-key.pem``, ``clip.mp4`` [, ``watermarked.mp4``].

``Exporter.export`` blocks (file reads, FFmpeg); the server runs it in a thread.
"""

from __future__ import annotations

import fractions
import hashlib
import io
import itertools
import logging
import os
import platform
import secrets
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from evidence import ffmpeg
from evidence.manifest import (
    CLIP_NAME,
    FORMAT,
    MANIFEST_NAME,
    PUBLIC_KEY_NAME,
    SIGNATURE_NAME,
    WATERMARKED_NAME,
    Progress,
    sign_manifest,
)
from evidence.signing import ALGORITHM, SigningKey
from evidence.store import EvidenceStore
from recording.segments import (
    FrameEntry,
    UnsafePath,
    contained,
    hash_file,
    index_path_of,
    iter_frames,
    parse_index,
)
from recording.store import SegmentRow
from recording.times import iso_utc
from rtcc import __version__
from rtcc.errors import RtccError
from rtcc.files import open_private, private_dir
from rtcc.media import VIDEO_CLOCK_RATE

log = logging.getLogger(__name__)

MAX_EXPORT_SECONDS = 6 * 3600.0
FFMPEG_TIMEOUT = 900.0
_CODEC_NAMES = {"h264": "h264", "h265": "hevc"}
_CONTINUOUS_GAP = 10 * VIDEO_CLOCK_RATE
"""A next segment whose first pts follows the previous one within this stays on its timeline."""


class ExportError(RtccError):
    """The export cannot be made; the message says why (no footage, altered source...)."""


class NoFootage(ExportError):
    """Nothing was recorded for that camera and range."""


COMMAND_LINE = "command_line"
"""The basis of an export made by ``rtcc export``: a local administrator's command line."""


@dataclass(frozen=True, slots=True)
class ExportGrant:
    """What allows an export, named in its audit entry and its manifest: ``recorded`` (an
    approved footage request), ``incident`` (footage recorded while the camera was opened for
    an incident), ``sharing`` (the owner's ``live_always`` sharing windows), ``department``
    (the department's own camera) or ``command_line``."""

    kind: str
    id: str

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "id": self.id}


@dataclass(frozen=True, slots=True)
class ExportRequest:
    camera_id: str
    start: float
    end: float
    case: str
    requester: str
    requester_role: str
    owner_id: str = ""
    camera_name: str = ""
    watermark: bool = False
    reason: str = ""
    allowed_requests: frozenset[str] | None = None
    """Footage requests whose uploaded segments may be used; None: all of them."""
    grant: ExportGrant = ExportGrant(COMMAND_LINE, "")
    """What allows the export; the server's routes always name the grant they checked."""
    within_range: bool = False
    """No frame from before ``start``: the clip begins at the first keyframe in the range
    instead of the one before it (a grant covers the range, not the lead-in)."""


@dataclass(frozen=True)
class ExportResult:
    export_id: str
    package: Path
    sha256: str
    bytes: int
    manifest: dict[str, Any]
    frames: int
    clip_start: float
    clip_end: float
    segment_ids: tuple[int, ...]


@dataclass
class _Selection:
    segment: SegmentRow
    path: Path
    entries: list[FrameEntry]
    first_index: int
    out_pts: list[int] = field(default_factory=list)


def _noop(stage: str, fraction: float) -> None:
    return None


class Exporter:
    def __init__(self, store: EvidenceStore, root: Path, key: SigningKey) -> None:
        self._store = store
        self._root = root
        self._key = key

    # -- the whole export -----------------------------------------------------------------------

    def export(self, request: ExportRequest, target: Path | None = None,
               progress: Progress = _noop) -> ExportResult:
        if not request.end > request.start:
            raise ExportError("the end of the range must be after its start")
        if request.end - request.start > MAX_EXPORT_SECONDS:
            raise ExportError(f"a range longer than {MAX_EXPORT_SECONDS / 3600:g} hours cannot "
                              "be exported at once; split it")
        binary = ffmpeg.ffmpeg_binary()
        segments = self._segments(request)
        progress("checking source hashes", 0.0)
        self._check_sources(segments, progress)
        selections = self._select(segments, request.start, request.end, request.within_range)
        frames = sum(len(sel.entries) for sel in selections)
        codec = selections[0].segment.codec
        export_id = f"exp-{secrets.token_hex(8)}"
        work_root = self._root / "tmp"
        private_dir(work_root)
        with tempfile.TemporaryDirectory(dir=work_root, prefix="export-") as work:
            folder = Path(work)
            ts_path = folder / "clip.ts"
            progress("muxing", 0.45)
            width, height = self._mux_ts(selections, ts_path, codec)
            progress("remuxing to MP4", 0.55)
            clip = folder / CLIP_NAME
            ffmpeg.run(ffmpeg.remux_args(binary, ts_path, clip, codec), "remux", FFMPEG_TIMEOUT)
            found = count_video_packets(clip)
            if found != frames:
                raise ExportError(f"the remuxed clip holds {found} frames, {frames} were chosen; "
                                  "export refused")
            files = [clip]
            first = selections[0].entries[0]
            last = selections[-1].entries[-1]
            if request.watermark:
                progress("watermarking (derivative copy)", 0.65)
                files.append(self._watermark(binary, clip, folder, request, first.capture_time))
            progress("signing", 0.9)
            manifest = self._manifest(export_id, request, selections, files, codec, width,
                                      height, ffmpeg.ffmpeg_version(binary))
            body, signature = sign_manifest(manifest, self._key)
            package = target or (self._root / "exports" / f"{export_id}.tar")
            self._pack(package, body, signature, files)
        sha, size = hash_file(package)
        progress("done", 1.0)
        log.info("camera %s: exported %d frames for case %s (%s)", request.camera_id, frames,
                 request.case, export_id)
        return ExportResult(
            export_id=export_id, package=package, sha256=sha, bytes=size, manifest=manifest,
            frames=frames, clip_start=first.capture_time, clip_end=last.capture_time,
            segment_ids=tuple(sel.segment.id for sel in selections),
        )

    # -- sources --------------------------------------------------------------------------------

    def _segments(self, request: ExportRequest) -> list[SegmentRow]:
        rows = [
            row for row in self._store.segments_between(request.camera_id, request.start,
                                                        request.end)
            if row.origin == "server" or request.allowed_requests is None
            or row.request_id in request.allowed_requests
        ]
        if not rows:
            raise NoFootage(f"there is no recording of camera {request.camera_id} between "
                              f"{iso_utc(request.start)} and {iso_utc(request.end)}")
        codecs = {row.codec for row in rows}
        if len(codecs) > 1:
            raise ExportError(f"the range mixes codecs ({', '.join(sorted(codecs))}); export "
                              "each part separately")
        return rows

    def _path(self, row: SegmentRow) -> Path:
        try:
            return contained(self._root, row.path)
        except UnsafePath as exc:
            raise ExportError(f"segment {row.id}: {exc}") from None

    def _check_sources(self, rows: Sequence[SegmentRow], progress: Progress) -> None:
        total = sum(row.bytes for row in rows) or 1
        done = 0

        def tick(count: int) -> None:
            nonlocal done
            done += count
            progress("checking source hashes", 0.4 * done / total)

        for row in rows:
            path = self._path(row)
            try:
                sha, size = hash_file(path, tick)
                index_sha = hashlib.sha256(index_path_of(path).read_bytes()).hexdigest()
            except OSError as exc:
                raise ExportError(f"segment {row.id} ({iso_utc(row.utc_start)}) cannot be read: "
                                  f"{exc.strerror or exc}") from None
            if sha != row.sha256 or size != row.bytes:
                raise ExportError(
                    f"segment {row.id} of camera {row.camera_id} ({iso_utc(row.utc_start)}) no "
                    "longer matches the SHA-256 recorded when it was written: it was altered or "
                    "damaged; export refused")
            if index_sha != row.index_sha256:
                raise ExportError(f"the frame index of segment {row.id} was altered or damaged; "
                                  "export refused")

    def _select(self, rows: Sequence[SegmentRow], start: float, end: float,
                within_range: bool = False) -> list[_Selection]:
        loaded = []
        for row in rows:
            path = self._path(row)
            loaded.append(_Selection(row, path, parse_index(index_path_of(path).read_bytes()), 0))
        chosen: list[_Selection] = []
        started = False
        for sel in loaded:
            entries = sel.entries
            if not started:
                first = next((i for i, e in enumerate(entries) if e.capture_time >= start), None)
                if first is None:
                    continue
                if within_range:
                    first = next((i for i in range(first, len(entries))
                                  if entries[i].keyframe), None)
                    if first is None or entries[first].capture_time >= end:
                        continue
                while first > 0 and not entries[first].keyframe:
                    first -= 1
                if not entries[first].keyframe:
                    continue  # cannot start a decoder here
                started = True
            else:
                first = 0
            last = max((i for i, e in enumerate(entries) if e.capture_time < end), default=-1)
            if last < first:
                break
            chosen.append(_Selection(sel.segment, sel.path, entries[first:last + 1], first))
        if not chosen:
            raise NoFootage(f"no recorded frames of camera {rows[0].camera_id} between "
                              f"{iso_utc(start)} and {iso_utc(end)}"
                              + (" starting with a keyframe (a clip may not begin before the "
                                 "granted range); widen the range" if within_range else ""))
        _timeline(chosen)
        return chosen

    # -- media ----------------------------------------------------------------------------------

    def _mux_ts(self, selections: Sequence[_Selection], target: Path,
                codec: str) -> tuple[int, int]:
        name = _CODEC_NAMES.get(codec)
        if name is None:
            raise ExportError(f"codec {codec!r} cannot be exported")
        first_data = next(iter_frames(selections[0].path, selections[0].entries[:1]))
        width, height = _picture_size(name, first_data)
        all_pts = [pts for sel in selections for pts in sel.out_pts]
        dts = _decode_timestamps(all_pts)
        time_base = fractions.Fraction(1, VIDEO_CLOCK_RATE)
        container = av.open(str(target), "w", format="mpegts")
        try:
            stream = container.add_stream(name)
            assert isinstance(stream, av.VideoStream)
            stream.width = width
            stream.height = height
            stream.time_base = time_base
            n = 0
            for sel in selections:
                for entry, data in zip(sel.entries, iter_frames(sel.path, sel.entries),
                                       strict=True):
                    packet = av.Packet(data)
                    packet.stream = stream
                    packet.time_base = time_base
                    packet.pts = all_pts[n]
                    packet.dts = dts[n]
                    packet.is_keyframe = entry.keyframe
                    container.mux(packet)
                    n += 1
        finally:
            container.close()
        return width, height

    def _watermark(self, binary: str, clip: Path, folder: Path, request: ExportRequest,
                   start_epoch: float) -> Path:
        text = "\n".join([
            f"CASE {_printable(request.case)}",
            f"camera {_printable(request.camera_id)} {_printable(request.camera_name)}".strip(),
            f"exported {iso_utc(time.time())} by {_printable(request.requester)}",
        ])
        text_file = folder / "watermark.txt"
        text_file.write_text(text, encoding="utf-8")
        target = folder / WATERMARKED_NAME
        ffmpeg.run(ffmpeg.watermark_args(binary, clip, target, text_file, start_epoch),
                   "watermark", FFMPEG_TIMEOUT)
        return target

    # -- manifest and package -------------------------------------------------------------------

    def _manifest(self, export_id: str, request: ExportRequest,
                  selections: Sequence[_Selection], files: Sequence[Path], codec: str,
                  width: int, height: int, ffmpeg_line: str) -> dict[str, Any]:
        first = selections[0].entries[0]
        last = selections[-1].entries[-1]
        sources = []
        gaps = []
        for i, sel in enumerate(selections):
            row = sel.segment
            sources.append({
                "segment_id": row.id, "origin": row.origin, "request_id": row.request_id,
                "file": Path(row.path).name, "sha256": row.sha256,
                "index_sha256": row.index_sha256, "bytes": row.bytes, "frames": row.frames,
                "frames_used": [sel.first_index, sel.first_index + len(sel.entries) - 1],
                "utc_start": iso_utc(row.utc_start), "utc_end": iso_utc(row.utc_end or 0.0),
                "camera_pts_start": row.pts_start, "camera_pts_end": row.pts_end,
                "discontinuity": row.discontinuity,
            })
            if i:
                previous = selections[i - 1].entries[-1]
                gap = sel.entries[0].capture_time - previous.capture_time
                if gap > 2.0:
                    gaps.append({"after_segment": selections[i - 1].segment.id,
                                 "seconds": round(gap, 3)})
        file_entries = []
        for path in files:
            sha, size = hash_file(path)
            entry: dict[str, Any] = {"name": path.name, "sha256": sha, "bytes": size}
            if path.name == CLIP_NAME:
                entry["kind"] = "the source frames remuxed into MP4, not re-encoded"
                entry["frames"] = sum(len(sel.entries) for sel in selections)
            else:
                entry["kind"] = "watermarked derivative of clip.mp4 (re-encoded)"
            file_entries.append(entry)
        return {
            "format": FORMAT,
            "export_id": export_id,
            "created_utc": iso_utc(time.time()),
            "case": request.case,
            "reason": request.reason,
            "camera": {"id": request.camera_id, "name": request.camera_name,
                       "owner_id": request.owner_id,
                       "profile": selections[0].segment.profile},
            "requester": {"user": request.requester, "role": request.requester_role},
            "grant": request.grant.as_json(),
            "requested_range": {"start_utc": iso_utc(request.start),
                                "end_utc": iso_utc(request.end)},
            "clip": {"start_utc": iso_utc(first.capture_time),
                     "end_utc": iso_utc(last.capture_time), "codec": codec,
                     "width": width, "height": height,
                     "frames": sum(len(sel.entries) for sel in selections),
                     "camera_pts_first": first.pts, "camera_pts_last": last.pts,
                     "time_note": "utc times are when the server received each frame (for "
                                  "segments uploaded by an owner's agent: when the agent "
                                  "captured it); camera_pts are the camera's own 90 kHz "
                                  "timestamps"},
            "gaps": gaps,
            "sources": sources,
            "files": file_entries,
            "tools": {"rtcc": __version__, "ffmpeg": ffmpeg_line, "pyav": av.__version__,
                      "python": platform.python_version()},
            "signing_key": {"algorithm": ALGORITHM, "fingerprint": self._key.fingerprint},
        }

    def _pack(self, package: Path, manifest: bytes, signature: bytes,
              files: Sequence[Path]) -> None:
        private_dir(package.parent, tighten=False)  # may be a folder the user chose
        partial = package.with_name(package.name + ".part")
        now = int(time.time())
        try:
            with (open_private(partial) as file,
                  tarfile.open(fileobj=file, mode="w", format=tarfile.PAX_FORMAT) as tar):
                for name, data in ((MANIFEST_NAME, manifest), (SIGNATURE_NAME, signature),
                                   (PUBLIC_KEY_NAME, self._key.public_pem())):
                    tar.addfile(_member(name, len(data), now), io.BytesIO(data))
                for path in files:
                    with open(path, "rb") as handle:
                        tar.addfile(_member(path.name, path.stat().st_size, now), handle)
            with open(partial, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(partial, package)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise


def _member(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o444
    info.uname = info.gname = "rtcc"
    return info


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else " " for ch in text)[:120]


def _timeline(selections: Sequence[_Selection]) -> None:
    """Output pts (90 kHz from 0): the camera's timestamps, re-based at discontinuities."""
    previous_max: int | None = None
    previous_capture = 0.0
    offset = 0
    previous_last_pts: int | None = None
    step = 3000
    for sel in selections:
        pts = [entry.pts for entry in sel.entries]
        low = min(pts)
        if previous_max is None:
            offset = -low
        else:
            continuous = (
                not sel.segment.discontinuity and previous_last_pts is not None
                and 0 < pts[0] - previous_last_pts <= _CONTINUOUS_GAP
            )
            if not continuous:
                gap = round((sel.entries[0].capture_time - previous_capture) * VIDEO_CLOCK_RATE)
                offset = previous_max + max(step, gap) - low
        sel.out_pts = [value + offset for value in pts]
        deltas = [b - a for a, b in itertools.pairwise(pts) if b > a]
        if deltas:
            step = min(deltas)
        previous_max = max(sel.out_pts)
        previous_last_pts = pts[-1]
        previous_capture = sel.entries[-1].capture_time


def _decode_timestamps(pts: Sequence[int]) -> list[int]:
    """Monotonic dts with dts <= pts for every frame (B-frames reorder pts)."""
    ordered = sorted(pts)
    shift = max(0, max(ordered[i] - pts[i] for i in range(len(pts))))
    return [value - shift for value in ordered]


def _picture_size(codec_name: str, keyframe: bytes) -> tuple[int, int]:
    decoder = (av.CodecContext.create("hevc", "r") if codec_name == "hevc"
               else av.CodecContext.create("h264", "r"))
    try:
        pictures = list(decoder.decode(av.Packet(keyframe))) + list(decoder.decode(None))
    except av.FFmpegError as exc:
        raise ExportError(f"the first keyframe of the range does not decode: {exc}") from None
    if not pictures:
        raise ExportError("the first keyframe of the range does not decode to a picture")
    return int(pictures[0].width), int(pictures[0].height)


def count_video_packets(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size)
