"""What a tipster's file is, judged by its bytes, and the copy analysts see.

Photos are decoded and encoded again with Pillow: the orientation the camera recorded is applied
to the pixels and nothing else is kept (no EXIF, GPS, maker notes or embedded thumbnails).
Videos are probed and remuxed with PyAV into a new container without any metadata (no creation
date, no location atom, no device names); the coded frames are copied, never re-encoded, so the
copy is exact picture for picture. A video whose codecs a browser cannot play is decoded and
encoded once into H.264 and AAC (the only case of re-encoding), also without metadata. The
original bytes are never changed (see ``tips.vault``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
from PIL import Image, ImageOps, UnidentifiedImageError

from rtcc.errors import RtccError
from rtcc.files import open_private, private_file

Kind = Literal["image", "video"]


@dataclass(frozen=True, slots=True)
class TipLimits:
    image_bytes: int = 25 * 1024**2
    video_bytes: int = 512 * 1024**2
    video_seconds: float = 600.0
    image_pixels: int = 60_000_000
    files_per_tip: int = 20
    chunk_bytes: int = 1024**2
    """Largest upload chunk the server takes; the page sends chunks of this size."""
    min_free_bytes: int = 2 * 1024**3
    """An upload starts only if the disk keeps this much free after it."""
    upload_hours: float = 24.0
    """An upload not finished within this many hours is refused and what it sent deleted."""


@dataclass(frozen=True, slots=True)
class Sniffed:
    kind: Kind
    label: str
    """What the bytes are: ``jpeg``, ``png``, ``mp4``..."""


@dataclass(frozen=True, slots=True)
class ViewCopy:
    """The analysts' copy of one file."""

    mime: str
    width: int
    height: int
    seconds: float


class MediaRefused(RtccError):
    """A file the tip line does not take; the message tells the tipster why."""


SNIFF_BYTES = 16
"""How many leading bytes ``sniff`` needs."""

_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif")
ACCEPTED = "photos (JPEG, PNG, WebP, GIF) and videos (MP4, MOV, WebM)"


def sniff(head: bytes) -> Sniffed:
    """The file's type from its first bytes, whatever its name says; ``MediaRefused`` for
    anything else."""
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", "jpeg")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", "png")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed("image", "gif")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed("image", "webp")
    if head[4:8] == b"ftyp":
        if head[8:12] in _HEIF_BRANDS:
            raise MediaRefused("HEIC/HEIF photos are not accepted: choose JPEG ('Most "
                               "Compatible') in the camera settings or send a screenshot")
        return Sniffed("video", "mp4")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return Sniffed("video", "webm")
    raise MediaRefused(f"this file is not one the tip line takes: send {ACCEPTED}")


def size_limit(kind: Kind, limits: TipLimits) -> int:
    return limits.image_bytes if kind == "image" else limits.video_bytes


def image_copy(source: Path, target: Path, limits: TipLimits) -> ViewCopy:
    """Decode the photo, turn it upright and write it again as a JPEG without metadata."""
    try:
        with Image.open(source) as image:
            if image.width * image.height > limits.image_pixels:
                raise MediaRefused(f"the photo is {image.width}x{image.height} pixels; the "
                                   f"most the tip line takes is {limits.image_pixels} pixels")
            image.seek(0)  # the first frame of an animation
            upright = ImageOps.exif_transpose(image)
            pixels = upright.convert("RGB")
            # No exif=, icc_profile= or comment=: the new file carries the pixels only.
            with open_private(target) as out:
                pixels.save(out, "JPEG", quality=88, optimize=True)
            return ViewCopy("image/jpeg", pixels.width, pixels.height, 0.0)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise MediaRefused(f"the photo cannot be read ({exc.__class__.__name__}); it may be "
                           "damaged: send it again") from None


_PLAYABLE = {
    # container: (video codecs, audio codecs) a current browser plays
    "mp4": ({"h264", "av1"}, {"aac", "mp3", "opus"}),
    "webm": ({"vp8", "vp9", "av1"}, {"opus", "vorbis"}),
}
_MIME = {"mp4": "video/mp4", "webm": "video/webm"}


def _target_format(video: set[str], audio: set[str]) -> str | None:
    for name, (videos, audios) in _PLAYABLE.items():
        if video <= videos and audio <= audios and video:
            return name
    return None


def video_copy(source: Path, target: Path, limits: TipLimits) -> ViewCopy:
    """Probe the video and remux it without metadata into ``target`` (encoded again when a
    browser cannot play its codecs)."""
    try:
        with av.open(str(source)) as container:
            seconds = (container.duration or 0) / av.time_base
            if not math.isfinite(seconds) or seconds > limits.video_seconds:
                raise MediaRefused(f"the video lasts {seconds:.0f} s; the most the tip line "
                                   f"takes is {limits.video_seconds:.0f} s")
            videos = list(container.streams.video)
            audios = list(container.streams.audio)
            if not videos:
                raise MediaRefused("the file has no video picture: send a video or a photo")
            video_codecs = {s.codec_context.name for s in videos}
            audio_codecs = {s.codec_context.name for s in audios}
            width = videos[0].codec_context.width
            height = videos[0].codec_context.height
            fmt = _target_format(video_codecs, audio_codecs)
            if fmt is None:
                _transcode(container, videos[0], audios[0] if audios else None, target)
                return ViewCopy("video/mp4", width - width % 2, height - height % 2, seconds)
            _remux(container, [*videos, *audios], target, fmt)
            return ViewCopy(_MIME[fmt], width, height, seconds)
    except av.FFmpegError as exc:
        raise MediaRefused(f"the video cannot be read ({exc.__class__.__name__}); it may be "
                           "damaged: send it again") from None


def _remux(container: av.container.InputContainer, streams: list[av.stream.Stream],
           target: Path, fmt: str) -> None:
    private_file(target)  # 0600 before the muxer opens it
    with av.open(str(target), "w", format=fmt) as out:
        mapping = {}
        for stream in streams:
            copied = out.add_stream_from_template(stream)
            copied.metadata.clear()
            mapping[stream.index] = copied
        for packet in container.demux(streams):
            if packet.dts is None:  # the demuxer's flush packet
                continue
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)


def _transcode(container: av.container.InputContainer, video: av.VideoStream,
               audio: av.AudioStream | None, target: Path) -> None:
    """Decode and encode into H.264 (and AAC) in MP4: for the codecs browsers cannot play."""
    private_file(target)
    rate = video.average_rate or Fraction(25)
    with av.open(str(target), "w", format="mp4") as out:
        picture = out.add_stream("libx264", rate=rate)
        picture.width = video.codec_context.width - video.codec_context.width % 2
        picture.height = video.codec_context.height - video.codec_context.height % 2
        picture.pix_fmt = "yuv420p"
        picture.options = {"preset": "veryfast", "crf": "26"}
        sound = out.add_stream("aac", rate=48000) if audio is not None else None
        frames = 0
        streams: list[av.stream.Stream] = [video] if audio is None else [video, audio]
        for packet in container.demux(streams):
            for frame in packet.decode():
                if isinstance(frame, av.VideoFrame):
                    scaled = frame.reformat(width=picture.width, height=picture.height,
                                            format="yuv420p")
                    scaled.pts = frames  # numbered at the output's frame rate
                    scaled.time_base = 1 / Fraction(rate)
                    frames += 1
                    out.mux(picture.encode(scaled))
                elif isinstance(frame, av.AudioFrame) and sound is not None:
                    frame.pts = None
                    out.mux(sound.encode(frame))
        out.mux(picture.encode(None))
        if sound is not None:
            out.mux(sound.encode(None))
