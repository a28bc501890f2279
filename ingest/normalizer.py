"""What a source receives, made into frames that keep the ``rtcc.media.EncodedFrame`` contract.

Every ingest path (the RTSP demuxer, WHIP publishers) feeds one ``Normalizer`` per connection:
length-prefixed packets become Annex-B, keyframes the demuxer split into several packets are
joined, the latest parameter sets go before every keyframe, nothing is published before the first
keyframe (which is marked as a discontinuity), and timestamps are put on the 90 kHz clock and
unwrapped (RTP timestamps are 32 bits from a random start; frames carry a plain integer).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from ingest.mediainfo import VideoTrack
from rtcc import bitstream
from rtcc.bitstream import Codec, HevcNalType, NalType, ParameterSets
from rtcc.media import VIDEO_CLOCK_RATE, EncodedFrame

_NINETY_KHZ = Fraction(1, VIDEO_CLOCK_RATE)


class ParameterSetInjector:
    """Keeps the latest parameter sets and puts them before every keyframe that lacks them.

    Feed Annex-B access units in decode order; ``process`` returns the access unit to publish
    and whether it is a keyframe a decoder can start from. Keyframes come out as
    ``[AUD] [VPS] SPS PPS other NAL units...`` with duplicates removed.
    """

    def __init__(self, codec: Codec = "h264", initial: ParameterSets | None = None) -> None:
        self.codec: Codec = codec
        self.params = initial or ParameterSets()
        self.inserted = 0
        """Keyframes that needed parameter sets from the cache."""
        self.unusable_keyframes = 0
        """Keyframes published as ordinary frames because no parameter sets were known yet."""

    def process(self, data: bytes, types: list[int] | None = None) -> tuple[bytes, bool]:
        """``types``: ``bitstream.nal_types(data)`` (or its prefix up to the first slice)."""
        codec = self.codec
        if types is None:
            types = bitstream.nal_types(data, codec)
        param_types = bitstream.parameter_types(codec)
        keyframe = any(bitstream.is_keyframe_type(kind, codec) for kind in types)
        has_params = any(kind in param_types for kind in types)
        if not keyframe:
            if has_params:
                self._remember(bitstream.split_annexb(data))
            return data, False
        nals = bitstream.split_annexb(data)
        in_band = self._remember(nals) if has_params else ParameterSets()
        params = self.params
        if not params.complete(codec):
            self.unusable_keyframes += 1
            return data, False
        if not in_band.complete(codec):
            self.inserted += 1
        return self._rebuild(nals, params), True

    def _remember(self, nals: list[bytes]) -> ParameterSets:
        found = bitstream.classify_parameter_sets(nals, self.codec, self.params.length_size)
        self.params = ParameterSets(
            found.sps or self.params.sps,
            found.pps or self.params.pps,
            found.vps or self.params.vps,
            self.params.length_size,
        )
        return found

    def _rebuild(self, nals: list[bytes], params: ParameterSets) -> bytes:
        aud_type = HevcNalType.AUD if self.codec == "h265" else NalType.AUD
        param_types = bitstream.parameter_types(self.codec)
        head: list[bytes] = []
        rest: list[bytes] = []
        for nal in nals:
            kind = bitstream.nal_type(nal, self.codec)
            if kind == aud_type and not head and not rest:
                head.append(nal)
            elif kind not in param_types:
                rest.append(nal)
        return bitstream.join_annexb([*head, *params.nals(), *rest])


@dataclass(frozen=True, slots=True)
class DemuxedUnit:
    """One packet as the demuxer delivered it, inside the normaliser: not yet known to be a
    whole picture nor a starting point, so not yet a frame."""

    data: bytes
    pts: int | None
    dts: int | None
    continuation: bool = False
    """The rest of a picture whose first part was already published: not a starting point."""
    types: list[int] | None = None
    """``bitstream.nal_types(data)``, or its prefix up to the first slice, when known."""


class KeyframeJoiner:
    """Joins keyframes that a demuxer delivered as several packets.

    FFmpeg's H.264 parser starts a new packet at every SPS, so a camera that repeats SPS/PPS
    before each slice of a multi-slice IDR picture arrives as one packet per slice. A keyframe
    packet is therefore held until the next packet shows whether it continues the same picture
    (its first slice does not start at macroblock 0). Once two keyframes in a row turned out
    complete, keyframes are no longer held (no added latency); a late continuation switches
    holding back on.
    """

    def __init__(self, codec: Codec = "h264") -> None:
        self.codec: Codec = codec
        self._held: DemuxedUnit | None = None
        self._hold = True
        self._complete_keyframes = 0
        self.joined = 0

    def push(self, unit: DemuxedUnit) -> list[DemuxedUnit]:
        """Returns the units ready to publish, in order."""
        codec = self.codec
        types = unit.types if unit.types is not None else bitstream.nal_types(unit.data, codec)
        keyframe = any(bitstream.is_keyframe_type(kind, codec) for kind in types)
        # Only keyframes are held, so only the slices of a keyframe can continue one.
        continuation = keyframe and self._continues_picture(unit.data)
        held = self._held
        if held is not None:
            if continuation:
                self.joined += 1
                self._complete_keyframes = 0
                self._held = DemuxedUnit(
                    held.data + unit.data,
                    held.pts if held.pts is not None else unit.pts,
                    held.dts if held.dts is not None else unit.dts,
                )
                return []
            self._held = None
            self._complete_keyframes += 1
            if self._complete_keyframes >= 2:
                self._hold = False
            return [held, *self.push(unit)]
        if continuation:
            self._hold = True  # the camera splits keyframes after all
            self._complete_keyframes = 0
            return [DemuxedUnit(unit.data, unit.pts, unit.dts, continuation=True, types=types)]
        if self._hold and keyframe:
            self._held = unit
            return []
        return [unit]

    def flush(self) -> list[DemuxedUnit]:
        held, self._held = self._held, None
        return [held] if held is not None else []

    def _continues_picture(self, data: bytes) -> bool:
        h265 = self.codec == "h265"
        for start, end in bitstream.nal_spans(data):
            kind = (data[start] >> 1) & 0x3F if h265 else data[start] & 0x1F
            if bitstream.is_vcl_type(kind, self.codec):
                return not bitstream.starts_new_picture(data[start:end], self.codec)
        return False


class TimestampUnwrapper:
    """Extends timestamps that wrap at ``2**bits`` (RTP: 32) into a plain integer.

    Each step is taken as the shortest way round the circle, so a timestamp slightly behind the
    previous one (a B-frame) steps back and one just past the wrap steps forward.
    """

    __slots__ = ("_extended", "_half", "_last", "_mask")

    def __init__(self, bits: int = 32) -> None:
        self._mask = (1 << bits) - 1
        self._half = 1 << (bits - 1)
        self._last: int | None = None
        self._extended = 0

    def unwrap(self, raw: int) -> int:
        raw &= self._mask
        last = self._last
        if last is None:
            self._extended = raw
        else:
            delta = (raw - last) & self._mask
            self._extended += delta - (self._mask + 1) if delta >= self._half else delta
        self._last = raw
        return self._extended


class Normalizer:
    """One connection's packets to EncodedFrames. Not thread-safe: one per connection, used by
    whoever receives it (the RTSP demux thread, or the event loop for WHIP)."""

    def __init__(
        self,
        codec: str,
        *,
        params: ParameterSets | None = None,
        length_prefixed: bool = False,
        time_base: Fraction = _NINETY_KHZ,
        wrap_bits: int | None = None,
        fps: float = 0.0,
        join_keyframes: bool = True,
    ) -> None:
        """``codec``: ``h264``/``h265`` are normalised, other codecs pass through as they are.
        ``wrap_bits``: the timestamps wrap at ``2**wrap_bits`` (32 for RTP), None when the
        demuxer already extends them. ``join_keyframes``: the input may split a keyframe into
        several packets (a demuxer's parser does; a WebRTC receiver hands over whole frames)."""
        self.codec = codec
        bits: Codec | None = "h264" if codec == "h264" else "h265" if codec == "h265" else None
        self._bits = bits
        initial = params or ParameterSets()
        self._length_prefixed = length_prefixed
        self._length_size = initial.length_size
        self._scale = None if time_base == _NINETY_KHZ else time_base * VIDEO_CLOCK_RATE
        self._pts_unwrap = TimestampUnwrapper(wrap_bits) if wrap_bits else None
        self._dts_unwrap = TimestampUnwrapper(wrap_bits) if wrap_bits else None
        self._joiner = KeyframeJoiner(bits) if bits and join_keyframes else None
        self._injector = ParameterSetInjector(bits, initial) if bits else None
        self._initial = initial
        self._ticks = round(VIDEO_CLOCK_RATE / fps) if fps > 0 else 3000
        self._last_pts: int | None = None
        self._started = False
        self.frames = 0
        self.skipped_before_keyframe = 0
        self.saw_b_frames = False

    @classmethod
    def for_track(cls, track: VideoTrack, fps: float = 0.0) -> Normalizer:
        """For packets a PyAV demuxer delivers from ``track`` (timestamps already extended)."""
        return cls(track.codec, params=track.params, length_prefixed=track.length_prefixed,
                   time_base=track.time_base, fps=fps)

    @classmethod
    def for_rtp(cls, codec: str) -> Normalizer:
        """For whole frames reassembled from RTP: 90 kHz, 32-bit wrapping timestamps."""
        return cls(codec, wrap_bits=32, join_keyframes=False)

    @property
    def keyframes_joined(self) -> int:
        return self._joiner.joined if self._joiner else 0

    @property
    def parameter_sets(self) -> ParameterSets:
        """The latest parameter sets seen (from extradata or in-band)."""
        return self._injector.params if self._injector else self._initial

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
        """Frames ready to publish after this packet (often one, sometimes none or two).
        ``keyframe_flag`` is only used for codecs that are not normalised."""
        if pts is not None and dts is not None and pts != dts:
            self.saw_b_frames = True
        pts = self._to_90k(pts, self._pts_unwrap)
        dts = self._to_90k(dts, self._dts_unwrap)
        if self._bits is None:
            return self._emit([(DemuxedUnit(data, pts, dts), keyframe_flag)], capture_time)
        if self._length_prefixed:
            data = bitstream.avcc_to_annexb(data, self._length_size)
        types = bitstream.nal_types(data, self._bits, until_first_slice=True)
        unit = DemuxedUnit(data, pts, dts, types=types)
        ready = self._joiner.push(unit) if self._joiner is not None else [unit]
        return self._emit([(each, False) for each in ready], capture_time)

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
                    codec=self.codec,
                    data=data,
                    pts=self._next_pts(unit),
                    keyframe=keyframe,
                    capture_time=capture_time,
                    discontinuity=discontinuity,
                )
            )
        self.frames += len(frames)
        return frames

    def _to_90k(self, value: int | None, unwrapper: TimestampUnwrapper | None) -> int | None:
        if value is None:
            return None
        if unwrapper is not None:
            value = unwrapper.unwrap(value)
        if self._scale is None:
            return value
        return int(value * self._scale)

    def _next_pts(self, unit: DemuxedUnit) -> int:
        pts = unit.pts if unit.pts is not None else unit.dts
        if pts is None:
            pts = 0 if self._last_pts is None else self._last_pts + self._ticks
        self._last_pts = pts
        return pts
