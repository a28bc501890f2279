"""Packetize each frame of a stream once, and share the payloads between all its viewers."""

from __future__ import annotations

from dataclasses import dataclass

from relay import h264
from relay.udp import plan_batches
from rtcc.media import EncodedFrame


@dataclass(frozen=True, slots=True)
class PacketizedFrame:
    """RTP payloads of one access unit, in order; the last one carries the marker bit.

    ``batches`` splits them into ``(start, end)`` runs that one segmented UDP send can carry.
    """

    payloads: tuple[bytes, ...]
    size: int
    keyframe: bool
    b_frame: bool
    batches: tuple[tuple[int, int], ...] = ()


class PacketCache:
    """Payloads of the most recent frames of one stream, keyed by the frame object.

    Every viewer of a stream receives the very same ``EncodedFrame`` objects from the hub, so the
    first viewer to send a frame packetizes it and the others reuse the result. The cache holds a
    reference to each frame it knows (so an identity is never reused while cached) and forgets the
    oldest once it holds ``max_frames``; a viewer far behind simply packetizes again.
    """

    def __init__(self, max_frames: int = 64, max_payload: int = h264.MAX_PAYLOAD) -> None:
        self._max_frames = max_frames
        self._max_payload = max_payload
        self._entries: dict[int, tuple[EncodedFrame, PacketizedFrame]] = {}
        self.hits = 0
        self.misses = 0
        self.b_frames = 0
        self.missing_parameter_sets = 0

    def get(self, frame: EncodedFrame) -> PacketizedFrame:
        entry = self._entries.get(id(frame))
        if entry is not None and entry[0] is frame:
            self.hits += 1
            return entry[1]
        self.misses += 1
        nals = h264.split_annexb(frame.data)
        b_frame = not frame.keyframe and h264.has_b_slice(nals)
        if b_frame:
            self.b_frames += 1
        if frame.keyframe and not h264.has_parameter_sets(nals):
            self.missing_parameter_sets += 1
        payloads = tuple(h264.packetize(nals, self._max_payload))
        sizes = [len(p) for p in payloads]
        packed = PacketizedFrame(payloads, sum(sizes), frame.keyframe, b_frame,
                                 plan_batches(sizes))
        entries = self._entries
        entries[id(frame)] = (frame, packed)
        if len(entries) > self._max_frames:
            del entries[next(iter(entries))]
        return packed

    def clear(self) -> None:
        self._entries.clear()

    def stats(self) -> dict[str, object]:
        return {
            "cached_frames": len(self._entries),
            "packetized": self.misses,
            "shared": self.hits,
            "b_frames": self.b_frames,
            "keyframes_without_parameter_sets": self.missing_parameter_sets,
        }
