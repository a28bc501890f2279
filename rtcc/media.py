"""Encoded media as it travels from a Source through a Stream to its Subscriptions: the frame
type and its contract."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

VIDEO_CLOCK_RATE = 90_000


class StreamState(enum.StrEnum):
    IDLE = "idle"
    STARTING = "starting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    ERROR = "error"


T = TypeVar("T")


class DerivedForm(Generic[T]):
    """A form of a frame made from its bytes (its RTP payloads, say), computed the first time
    a consumer asks and then kept with the frame, so every consumer of a stream shares it."""

    __slots__ = ("build", "name")

    def __init__(self, name: str, build: Callable[[EncodedFrame], T]) -> None:
        self.name = name
        self.build = build

    def __repr__(self) -> str:
        return f"<DerivedForm {self.name}>"


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One access unit, exactly as the camera encoded it: the one frame type from every source
    (RTSP, WHIP) through the hub to every consumer (WebRTC viewers, recorders).

    The contract every source keeps (``ingest.normalizer`` is where it is made true):

    - ``data`` is Annex-B (start codes), one whole picture.
    - Every keyframe carries its parameter sets before the IDR slice (H.264: SPS and PPS;
      H.265: VPS, SPS and PPS), so any keyframe is a valid starting point for a decoder.
    - A source's first frame after it (re)connects is a keyframe with ``discontinuity`` set.
    - ``pts`` is on the 90 kHz clock and unwrapped: a plain integer that never wraps at
      2**32 (RTP timestamps are extended on every path, WHIP included). Between two
      discontinuities it increases frame after frame (with B-frames, in presentation order:
      it may step back within the reorder depth); across a discontinuity it may jump anywhere.
    - Frames are immutable and shared: the hub hands the same object to every subscriber.
      Forms derived from a frame (``derive``) are made once, on the event loop, and shared.
    """

    codec: str
    data: bytes
    pts: int
    """Presentation time on a 90 kHz clock, unwrapped (see the class docstring)."""
    keyframe: bool
    capture_time: float
    """Wall-clock time (``time.time()``) at which ingest received the frame."""
    discontinuity: bool = False
    """True on the first frame after the source (re)connected: timestamps restart here."""
    _derived: dict[DerivedForm[Any], Any] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def derive(self, form: DerivedForm[T]) -> T:
        """``form`` of this frame, built on first use and kept with the frame (event loop
        only: frames are shared, so this is not thread-safe)."""
        value = self._derived.get(form, _MISSING)
        if value is _MISSING:
            value = self._derived[form] = form.build(self)
        result: T = value
        return result

    def derived(self, form: DerivedForm[T]) -> T | None:
        """``form`` of this frame if it was already built, else None."""
        value: T | None = self._derived.get(form)
        return value


_MISSING: Any = object()


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
