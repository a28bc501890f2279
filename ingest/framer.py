"""Demuxed packets of one connection to the EncodedFrames the hub distributes.

Per connection: length-prefixed packets become Annex-B, keyframes split by the demuxer are joined,
parameter sets go before every keyframe, nothing is published before the first keyframe, that
first frame is marked as a discontinuity, and timestamps are put on the 90 kHz clock.
"""

from __future__ import annotations

from fractions import Fraction

from ingest import h264
from ingest.access_units import DemuxedUnit, KeyframeJoiner, ParameterSetInjector
from ingest.h264 import ParameterSets
from ingest.mediainfo import VideoTrack
from rtcc.media import VIDEO_CLOCK_RATE, EncodedFrame

_NINETY_KHZ = Fraction(1, VIDEO_CLOCK_RATE)


class Framer:
    """Not thread-safe: one per connection, used by the thread that demuxes it."""

    def __init__(self, track: VideoTrack, fps: float = 0.0) -> None:
        self.track = track
        self._codec = track.bitstream_codec
        self._scale = None if track.time_base == _NINETY_KHZ else track.time_base * VIDEO_CLOCK_RATE
        self._length_size = track.params.length_size
        self._joiner = KeyframeJoiner(self._codec) if self._codec else None
        self._injector = ParameterSetInjector(self._codec, track.params) if self._codec else None
        self._ticks = round(VIDEO_CLOCK_RATE / fps) if fps > 0 else 3000
        self._last_pts: int | None = None
        self._started = False
        self.frames = 0
        self.skipped_before_keyframe = 0
        self.saw_b_frames = False

    @property
    def keyframes_joined(self) -> int:
        return self._joiner.joined if self._joiner else 0

    @property
    def parameter_sets(self) -> ParameterSets:
        """The latest parameter sets seen (from extradata or in-band)."""
        return self._injector.params if self._injector else self.track.params

    @property
    def parameter_sets_inserted(self) -> int:
        return self._injector.inserted if self._injector else 0

    def push(
        self,
        data: bytes,
        pts: int | None,
        dts: int | None,
        keyframe_flag: bool,
        capture_time: float,
    ) -> list[EncodedFrame]:
        """Frames ready to publish after this packet (often one, sometimes none or two)."""
        if pts is not None and dts is not None and pts != dts:
            self.saw_b_frames = True
        if self._joiner is None or self._codec is None:
            unit = DemuxedUnit(data, self._to_90k(pts), self._to_90k(dts))
            return self._emit([(unit, keyframe_flag)], capture_time)
        if self.track.length_prefixed:
            data = h264.avcc_to_annexb(data, self._length_size)
        types = h264.nal_types(data, self._codec, until_first_slice=True)
        unit = DemuxedUnit(data, self._to_90k(pts), self._to_90k(dts), types=types)
        return self._emit([(ready, False) for ready in self._joiner.push(unit)], capture_time)

    def flush(self, capture_time: float) -> list[EncodedFrame]:
        if self._joiner is None:
            return []
        return self._emit([(ready, False) for ready in self._joiner.flush()], capture_time)

    def _emit(
        self, units: list[tuple[DemuxedUnit, bool]], capture_time: float
    ) -> list[EncodedFrame]:
        frames: list[EncodedFrame] = []
        for unit, keyframe_flag in units:
            data, keyframe = unit.data, keyframe_flag
            if self._injector is not None and not unit.continuation:
                data, keyframe = self._injector.process(unit.data, unit.types)
            if not self._started:
                if not keyframe:
                    self.skipped_before_keyframe += 1
                    continue
                self._started = True
                discontinuity = True
            else:
                discontinuity = False
            frames.append(
                EncodedFrame(
                    codec=self.track.codec,
                    data=data,
                    pts=self._next_pts(unit),
                    keyframe=keyframe,
                    capture_time=capture_time,
                    discontinuity=discontinuity,
                )
            )
        self.frames += len(frames)
        return frames

    def _to_90k(self, value: int | None) -> int | None:
        if value is None or self._scale is None:
            return value
        return int(value * self._scale)

    def _next_pts(self, unit: DemuxedUnit) -> int:
        pts = unit.pts if unit.pts is not None else unit.dts
        if pts is None:
            pts = 0 if self._last_pts is None else self._last_pts + self._ticks
        self._last_pts = pts
        return pts
