"""FFmpeg for exports: fixed argument lists, no shell, nothing from a user as an option.

Every command line is built here from constants and paths this server created. Text that ends
up in a filter (the watermark: case number, camera, time) is never put in the filter string: it is
written to a file read with ``textfile`` and ``expansion=none``; the file's path is escaped for
both levels of FFmpeg's filter syntax anyway (``escape_filter_value``).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from rtcc.errors import RtccError

log = logging.getLogger(__name__)

FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"),
)
MP4_CODEC_TAGS = {"h264": "avc1", "h265": "hvc1"}


class FfmpegError(RtccError):
    """FFmpeg is missing or failed; the message carries the end of its error output."""


def ffmpeg_binary() -> str:
    found = shutil.which("ffmpeg")
    if found is None:
        raise FfmpegError("ffmpeg is not installed (Debian: apt-get install ffmpeg)")
    return found


def ffmpeg_version(binary: str) -> str:
    """The first line of ``ffmpeg -version`` (recorded in every manifest)."""
    result = subprocess.run(  # noqa: S603 (fixed argv, no shell)
        [binary, "-hide_banner", "-version"], capture_output=True, text=True, timeout=20,
        check=False,
    )
    first = result.stdout.splitlines()[0] if result.stdout else ""
    if result.returncode != 0 or not first:
        raise FfmpegError(f"{binary} -version failed: {result.stderr.strip()[-300:]}")
    return first.strip()


def escape_filter_value(value: str) -> str:
    """Escape a value for a filter option, then for the filtergraph around it.

    Level 1 (option value): backslash before ``\\``, ``'`` and ``:``.
    Level 2 (filtergraph): backslash before ``\\``, ``'``, ``[``, ``]``, ``,`` and ``;``.
    """
    level1 = "".join("\\" + ch if ch in "\\':" else ch for ch in value)
    return "".join("\\" + ch if ch in "\\'[],;" else ch for ch in level1)


def remux_args(binary: str, source_ts: Path, target_mp4: Path, codec: str) -> list[str]:
    """MPEG-TS (our frames with their timestamps) to MP4, streams copied, nothing re-encoded."""
    return [
        binary, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "mpegts", "-i", str(source_ts),
        "-map", "0:v:0", "-c", "copy", "-tag:v", MP4_CODEC_TAGS.get(codec, "avc1"),
        "-movflags", "+faststart", "-f", "mp4", str(target_mp4),
    ]


def _font_option() -> str:
    for candidate in FONT_CANDIDATES:
        if candidate.is_file():
            return f"fontfile={escape_filter_value(str(candidate))}:"
    return ""


def watermark_filter(text_file: Path, start_epoch: float) -> str:
    """Two drawtext filters: the case/camera text from a file, and the running UTC time."""
    font = _font_option()
    box = "fontcolor=white:fontsize=h/24:box=1:boxcolor=black@0.55:boxborderw=6"
    caption = (f"drawtext={font}textfile={escape_filter_value(str(text_file))}:"
               f"expansion=none:{box}:x=10:y=10")
    # The offset is a number this server formats; nothing else varies in this string.
    clock = (f"drawtext={font}text='%{{pts\\:gmtime\\:{start_epoch:.3f}}} UTC':"
             f"{box}:x=10:y=h-th-10")
    return f"{caption},{clock}"


def watermark_args(binary: str, source_mp4: Path, target_mp4: Path, text_file: Path,
                   start_epoch: float) -> list[str]:
    """A burned-in copy (re-encoded: it is a derivative, the clip stays untouched); one output
    picture per source frame, none added or dropped."""
    return [
        binary, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-i", str(source_mp4), "-map", "0:v:0",
        "-vf", watermark_filter(text_file, start_epoch), "-fps_mode", "passthrough",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
        "-movflags", "+faststart", "-f", "mp4", str(target_mp4),
    ]


def run(args: Sequence[str], what: str, timeout: float) -> None:
    """Run FFmpeg; raise FfmpegError with the tail of its error output if it fails."""
    log.debug("running %s: %s", what, " ".join(args))
    try:
        result = subprocess.run(  # noqa: S603 (argv built above, no shell)
            list(args), capture_output=True, text=True, timeout=timeout, check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise FfmpegError(f"{what}: ffmpeg did not finish within {timeout:g} s") from None
    if result.returncode != 0:
        raise FfmpegError(f"{what}: ffmpeg failed ({result.returncode}): "
                          f"{result.stderr.strip()[-500:]}")
