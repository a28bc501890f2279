"""Access units a decoder can start from, built from what a demuxer delivers.

``KeyframeJoiner`` puts back together keyframes the demuxer split into several packets;
``ParameterSetInjector`` keeps the latest parameter sets and puts them before every keyframe.
"""

from __future__ import annotations

from dataclasses import dataclass

from ingest import h264
from ingest.h264 import Codec, HevcNalType, NalType, ParameterSets


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
        """``types``: ``h264.nal_types(data)`` (or its prefix up to the first slice) if known."""
        codec = self.codec
        if types is None:
            types = h264.nal_types(data, codec)
        param_types = h264.parameter_types(codec)
        keyframe = any(h264.is_keyframe_type(kind, codec) for kind in types)
        has_params = any(kind in param_types for kind in types)
        if not keyframe:
            if has_params:
                self._remember(h264.split_annexb(data))
            return data, False
        nals = h264.split_annexb(data)
        in_band = self._remember(nals) if has_params else ParameterSets()
        params = self.params
        if not params.complete(codec):
            self.unusable_keyframes += 1
            return data, False
        if not in_band.complete(codec):
            self.inserted += 1
        return self._rebuild(nals, params), True

    def _remember(self, nals: list[bytes]) -> ParameterSets:
        found = h264.classify_parameter_sets(nals, self.codec, self.params.length_size)
        self.params = ParameterSets(
            found.sps or self.params.sps,
            found.pps or self.params.pps,
            found.vps or self.params.vps,
            self.params.length_size,
        )
        return found

    def _rebuild(self, nals: list[bytes], params: ParameterSets) -> bytes:
        aud_type = HevcNalType.AUD if self.codec == "h265" else NalType.AUD
        param_types = h264.parameter_types(self.codec)
        head: list[bytes] = []
        rest: list[bytes] = []
        for nal in nals:
            kind = h264.nal_type(nal, self.codec)
            if kind == aud_type and not head and not rest:
                head.append(nal)
            elif kind not in param_types:
                rest.append(nal)
        return h264.join_annexb([*head, *params.nals(), *rest])


@dataclass(frozen=True, slots=True)
class DemuxedUnit:
    """One packet from a demuxer, before it is published as an EncodedFrame."""

    data: bytes
    pts: int | None
    dts: int | None
    continuation: bool = False
    """The rest of a picture whose first part was already published: not a starting point."""
    types: list[int] | None = None
    """``h264.nal_types(data)``, or its prefix up to the first slice, when known."""


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
        types = unit.types if unit.types is not None else h264.nal_types(unit.data, codec)
        keyframe = any(h264.is_keyframe_type(kind, codec) for kind in types)
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
        for start, end in h264.nal_spans(data):
            kind = (data[start] >> 1) & 0x3F if h265 else data[start] & 0x1F
            if h264.is_vcl_type(kind, self.codec):
                return not h264.starts_new_picture(data[start:end], self.codec)
        return False
