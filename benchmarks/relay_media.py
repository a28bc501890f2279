"""Clips and a replaying Source shared by the relay benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import av

from benchmarks.stamp import insert_before_first_slice, stamp_nal
from rtcc.hub import FrameSink
from rtcc.media import VIDEO_CLOCK_RATE, EncodedFrame, MediaInfo


@dataclass(frozen=True)
class ClipSpec:
    """A clip long enough that no measurement window crosses its loop point (the naive relay's
    MediaPlayer bursts when it loops, which would be charged to it)."""

    width: int = 1280
    height: int = 720
    fps: int = 30
    bitrate: str = "2M"
    gop_seconds: float = 1.0
    seconds: float = 40.0

    def filename(self) -> str:
        return (f"clip_{self.width}x{self.height}_{self.fps}fps_{self.bitrate}"
                f"_gop{self.gop_seconds:g}s_{self.seconds:g}s.ts")


def make_clip(directory: Path, spec: ClipSpec) -> Path:
    """An MPEG-TS H.264 clip (no B-frames, SPS/PPS before every IDR), made once and reused."""
    path = directory / spec.filename()
    if path.exists():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    gop = max(1, round(spec.gop_seconds * spec.fps))
    tmp = path.with_suffix(".tmp.ts")
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
            "-i", f"testsrc2=size={spec.width}x{spec.height}:rate={spec.fps}",
            "-t", f"{spec.seconds:g}", "-c:v", "libx264", "-preset", "veryfast",
            "-b:v", spec.bitrate, "-maxrate", spec.bitrate, "-bufsize", spec.bitrate,
            "-bf", "0", "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
            "-pix_fmt", "yuv420p", "-x264-params", "repeat-headers=1", "-f", "mpegts", str(tmp),
        ],
        check=True,
        timeout=600,
    )
    tmp.rename(path)
    return path


def read_units(path: Path) -> list[tuple[bytes, bool]]:
    """The clip's access units in decode order (Annex-B, keyframe flag)."""
    units: list[tuple[bytes, bool]] = []
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            if packet.size:
                units.append((bytes(packet), bool(packet.is_keyframe)))
    return units


class ReplaySource:
    """Replays access units in a loop at a fixed frame rate, as a camera would send them.

    With ``stamp`` every frame carries the time it was pushed (``benchmarks.stamp``); ``phase``
    (seconds) delays the first frame, so that several cameras do not all send at one instant.
    """

    def __init__(self, units: list[tuple[bytes, bool]], fps: int, width: int, height: int,
                 stamp: bool = False, phase: float = 0.0) -> None:
        self._units = units
        self._fps = fps
        self._width = width
        self._height = height
        self._stamp = stamp
        self._phase = phase
        self._task: asyncio.Task[None] | None = None
        self.pushed = 0

    async def start(self, sink: FrameSink) -> None:
        sink.set_media_info(MediaInfo(video_codec="h264", width=self._width,
                                      height=self._height, fps=float(self._fps)))
        self._task = asyncio.get_running_loop().create_task(self._run(sink),
                                                            name="bench:replay")

    async def _run(self, sink: FrameSink) -> None:
        step = VIDEO_CLOCK_RATE // self._fps
        if self._phase:
            await asyncio.sleep(self._phase)
        start = time.monotonic()
        while True:
            data, key = self._units[self.pushed % len(self._units)]
            now = time.time()
            if self._stamp:
                data = insert_before_first_slice(data, stamp_nal(now))
            sink.push_frame(EncodedFrame("h264", data, self.pushed * step, key, now,
                                         discontinuity=self.pushed == 0))
            self.pushed += 1
            await asyncio.sleep(max(0.0, start + self.pushed / self._fps - time.monotonic()))

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def stats(self) -> dict[str, object]:
        return {"kind": "replay", "pushed": self.pushed}
