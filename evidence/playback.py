"""Playback of recorded footage: segments -> fragmented MP4, remuxed, never re-encoded.

The frames of a camera's closed segments from the keyframe at (or before, when the caller may
see the lead-in) the requested start are muxed by PyAV into fragmented MP4
(``movflags=frag_keyframe+empty_moov+default_base_moof``: an init segment, then one fragment per
GOP), the form Media Source Extensions take. The bytes are produced on a worker thread and
handed over in chunks as they are written, so the first picture leaves the server as soon as
its GOP is muxed, whatever the length of the range.

Timestamps are the camera's own (90 kHz), re-based to start at 0 as exports do; the capture
time (server UTC) of the first frame is returned with the stream so the player shows the
recording's time as ``first_capture + currentTime``.
"""

from __future__ import annotations

import fractions
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import av

from evidence.export import (
    ExportError,
    NoFootage,
    _decode_timestamps,
    _picture_size,
    _Selection,
    _timeline,
)
from evidence.store import EvidenceStore
from recording.segments import FrameEntry, contained, index_path_of, iter_frames, parse_index
from recording.store import SegmentRow
from recording.times import iso_utc
from rtcc.media import VIDEO_CLOCK_RATE

MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
MAX_PLAY_SECONDS = 1800.0
"""One playback request covers at most this much; the player asks for the next part."""
_CODEC_NAMES = {"h264": "h264", "h265": "hevc"}
MIME_TYPES = {"h264": 'video/mp4; codecs="avc1.640028"', "h265": 'video/mp4; codecs="hvc1"'}


def mime_type(codec: str, keyframe: bytes) -> str:
    """The MIME type Media Source Extensions need: for H.264 with the profile and level of the
    stream's SPS (``avc1.PPCCLL``)."""
    if codec != "h264":
        return MIME_TYPES.get(codec, "video/mp4")
    for nal in keyframe.split(b"\x00\x00\x01"):
        if len(nal) >= 4 and nal[0] & 0x1F == 7:
            return f'video/mp4; codecs="avc1.{nal[1]:02x}{nal[2]:02x}{nal[3]:02x}"'
    return MIME_TYPES["h264"]


class PlaybackStopped(Exception):
    """The viewer went away; the muxing thread stops at the next write."""


@dataclass(frozen=True, slots=True)
class PlayPlan:
    """What one playback will send: frames of these segments, from ``first_capture``."""

    camera_id: str
    codec: str
    selections: tuple[_Selection, ...]
    first_capture: float
    last_capture: float
    frames: int
    segment_ids: tuple[int, ...]
    mime: str


def plan(store: EvidenceStore, root: Path, camera_id: str, start: float, end: float, *,
         within_range: bool, allowed_requests: frozenset[str] | None) -> PlayPlan:
    """The frames to play of ``camera_id`` over ``start``..``end`` (blocking: the store's
    thread or a worker). ``NoFootage`` when nothing was recorded there."""
    rows = [row for row in store.segments_between(camera_id, start, end)
            if row.origin == "server" or allowed_requests is None
            or row.request_id in allowed_requests]
    if not rows:
        raise NoFootage(f"there is no recording of camera {camera_id} between "
                        f"{iso_utc(start)} and {iso_utc(end)}")
    codec = rows[0].codec
    rows = [row for row in rows if row.codec == codec]
    chosen = _select(root, rows, start, end, within_range)
    first = chosen[0].entries[0]
    last = chosen[-1].entries[-1]
    keyframe = next(iter_frames(chosen[0].path, chosen[0].entries[:1]))
    return PlayPlan(camera_id, codec, tuple(chosen), first.capture_time, last.capture_time,
                    sum(len(sel.entries) for sel in chosen),
                    tuple(sel.segment.id for sel in chosen), mime_type(codec, keyframe))


def _select(root: Path, rows: Sequence[SegmentRow], start: float, end: float,
            within_range: bool) -> list[_Selection]:
    chosen: list[_Selection] = []
    for row in rows:
        path = contained(root, row.path)
        try:
            entries = parse_index(index_path_of(path).read_bytes())
        except OSError as exc:
            raise ExportError(f"segment {row.id} of camera {row.camera_id} cannot be read: "
                              f"{exc.strerror or exc}") from None
        if not chosen:
            first = _start_index(entries, start, end, within_range)
            if first is None:
                continue
        else:
            first = 0
        last = max((i for i, e in enumerate(entries) if e.capture_time < end), default=-1)
        if last < first:
            break
        chosen.append(_Selection(row, path, entries[first:last + 1], first))
    if not chosen:
        raise NoFootage(f"no recorded keyframe of camera {rows[0].camera_id} between "
                        f"{iso_utc(start)} and {iso_utc(end)} to start playing from")
    _timeline(chosen)
    return chosen


def _start_index(entries: Sequence[FrameEntry], start: float, end: float,
                 within_range: bool) -> int | None:
    """The keyframe to start at: the last one at or before ``start`` (the first one after it
    when frames before ``start`` may not be shown)."""
    at = next((i for i, e in enumerate(entries) if e.capture_time >= start), None)
    if at is None:
        return None
    if within_range:
        key = next((i for i in range(at, len(entries)) if entries[i].keyframe), None)
        return key if key is not None and entries[key].capture_time < end else None
    while at > 0 and not entries[at].keyframe:
        at -= 1
    return at if entries[at].keyframe else None


class _Sink:
    """A write-only file for PyAV that hands each written block to ``deliver``."""

    def __init__(self, deliver: Callable[[bytes], None], stop: threading.Event) -> None:
        self._deliver = deliver
        self._stop = stop
        self.written = 0

    def write(self, data: bytes) -> int:
        if self._stop.is_set():
            raise PlaybackStopped
        self._deliver(bytes(data))
        self.written += len(data)
        return len(data)

    def flush(self) -> None:
        return None


def mux_fmp4(play: PlayPlan, deliver: Callable[[bytes], None], stop: threading.Event) -> int:
    """Mux the plan's frames into fragmented MP4, handing the bytes to ``deliver`` as they are
    written (blocking: run it on a worker thread). Returns the frames sent; stops early, quietly,
    when ``stop`` is set."""
    name = _CODEC_NAMES.get(play.codec)
    if name is None:
        raise ExportError(f"codec {play.codec!r} cannot be played")
    all_pts = [pts for sel in play.selections for pts in sel.out_pts]
    base = min(all_pts)
    all_pts = [value - base for value in all_pts]
    dts = _decode_timestamps(all_pts)
    time_base = fractions.Fraction(1, VIDEO_CLOCK_RATE)
    first_sel = play.selections[0]
    first_data = next(iter_frames(first_sel.path, first_sel.entries[:1]))
    width, height = _picture_size(name, first_data)
    sink = _Sink(deliver, stop)
    sent = 0
    try:
        container = av.open(sink, "w", format="mp4", options={"movflags": MOVFLAGS})
        try:
            stream = container.add_stream(name)
            assert isinstance(stream, av.VideoStream)
            stream.width = width
            stream.height = height
            stream.time_base = time_base
            for sel in play.selections:
                for entry, data in zip(sel.entries, iter_frames(sel.path, sel.entries),
                                       strict=True):
                    packet = av.Packet(data)
                    packet.stream = stream
                    packet.time_base = time_base
                    packet.pts = all_pts[sent]
                    packet.dts = dts[sent]
                    packet.is_keyframe = entry.keyframe
                    container.mux(packet)
                    sent += 1
        finally:
            container.close()
    except PlaybackStopped:
        return sent
    except av.FFmpegError as exc:
        if stop.is_set():
            return sent
        raise ExportError(f"camera {play.camera_id}: the recording cannot be muxed for "
                          f"playback: {exc}") from None
    return sent

