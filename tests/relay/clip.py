"""H.264 clips made with ffmpeg, replayed at real time by an in-test Source."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from rtcc.hub import FrameSink
from rtcc.media import VIDEO_CLOCK_RATE, EncodedFrame, MediaInfo

INDEX_BASE = 20
"""Index clips paint frame N with luma INDEX_BASE + N % 200, so a decoded picture names its frame."""


@dataclass(frozen=True)
class Clip:
    units: tuple[tuple[bytes, bool], ...]
    """(Annex-B access unit, keyframe) in decode order."""
    fps: int
    width: int
    height: int
    gop: int

    @property
    def keyframe_indices(self) -> list[int]:
        return [i for i, (_, key) in enumerate(self.units) if key]


def make_clip(
    path: Path,
    *,
    fps: int = 15,
    gop: int = 30,
    seconds: float = 4.0,
    size: str = "320x240",
    pattern: str = "testsrc2",
    bitrate: str | None = None,
    bframes: int = 0,
) -> Clip:
    """Encode a clip with libx264: SPS/PPS repeated before every IDR, an AUD before every frame."""
    width, height = (int(v) for v in size.split("x"))
    if pattern == "index":
        source = (f"nullsrc=s={size}:r={fps},"
                  f"geq=lum='{INDEX_BASE}+mod(N\\,200)':cb=128:cr=128")
    else:
        source = f"testsrc2=size={size}:rate={fps}"
    rate = ["-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate] if bitrate else []
    cmd = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source,
        "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", *rate,
        "-bf", str(bframes), "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
        "-pix_fmt", "yuv420p", "-x264-params", "repeat-headers=1",
        "-bsf:v", "h264_metadata=aud=insert", "-f", "h264", str(path),
    ]
    subprocess.run(cmd, check=True, timeout=120)
    return Clip(split_access_units(path.read_bytes()), fps, width, height, gop)


def split_access_units(data: bytes) -> tuple[tuple[bytes, bool], ...]:
    """Access units of an Annex-B stream whose every frame starts with an AUD NAL unit."""
    starts: list[int] = []
    pos = data.find(b"\x00\x00\x01\x09")
    while pos >= 0:
        starts.append(pos - 1 if pos > 0 and data[pos - 1] == 0 else pos)
        pos = data.find(b"\x00\x00\x01\x09", pos + 4)
    units = []
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else len(data)
        unit = data[start:end]
        units.append((unit, b"\x00\x00\x01\x65" in unit or b"\x00\x00\x01\x25" in unit))
    return tuple(units)


class ClipSource:
    """Replays a clip in a loop at its frame rate, like a camera would send it."""

    def __init__(self, clip: Clip, name: str = "clip") -> None:
        self.clip = clip
        self.name = name
        self.pushed = 0
        self.keyframes_pushed: list[int] = []
        """Indices (in pushed order) of the keyframes sent so far."""
        self._task: asyncio.Task[None] | None = None

    async def start(self, sink: FrameSink) -> None:
        sink.set_media_info(MediaInfo(video_codec="h264", width=self.clip.width,
                                      height=self.clip.height, fps=float(self.clip.fps)))
        self._task = asyncio.get_running_loop().create_task(self._run(sink),
                                                            name=f"test:{self.name}:replay")

    async def _run(self, sink: FrameSink) -> None:
        step = VIDEO_CLOCK_RATE // self.clip.fps
        interval = 1 / self.clip.fps
        start = time.monotonic()
        count = len(self.clip.units)
        while True:
            data, key = self.clip.units[self.pushed % count]
            if key:
                self.keyframes_pushed.append(self.pushed)
            sink.push_frame(EncodedFrame("h264", data, self.pushed * step, key, time.time(),
                                         discontinuity=self.pushed == 0))
            self.pushed += 1
            delay = start + self.pushed * interval - time.monotonic()
            await asyncio.sleep(max(0.0, delay))

    def frame_index(self, luma: float) -> int:
        """The pushed-frame index (mod 200) an index-clip picture shows."""
        return round(luma) - INDEX_BASE

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def stats(self) -> dict[str, object]:
        return {"kind": "clip", "pushed": self.pushed}
