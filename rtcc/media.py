"""Encoded media as it travels from a Source through a Stream to its Subscriptions."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

VIDEO_CLOCK_RATE = 90_000


class StreamState(enum.StrEnum):
    IDLE = "idle"
    STARTING = "starting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One access unit, exactly as the camera encoded it.

    For H.264, ``data`` is Annex-B (start codes) and every keyframe carries SPS and PPS before
    its IDR, so any keyframe is a valid starting point for a decoder.
    """

    codec: str
    data: bytes
    pts: int
    """Presentation time on a 90 kHz clock. Jumps when the source reconnects."""
    keyframe: bool
    capture_time: float
    """Wall-clock time (``time.time()``) at which ingest received the frame."""
    discontinuity: bool = False
    """True on the first frame after the source (re)connected: timestamps restart here."""


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What a source found out about its media; shown in stream stats."""

    video_codec: str = ""
    width: int = 0
    height: int = 0
    fps: float = 0.0
    profile: str = ""
    has_b_frames: bool = False
    audio_codec: str = ""
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, object]:
        return {
            "video_codec": self.video_codec,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "profile": self.profile,
            "has_b_frames": self.has_b_frames,
            "audio_codec": self.audio_codec,
            "warnings": list(self.warnings),
        }
