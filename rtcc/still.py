"""A still picture of a live stream: its latest keyframe decoded (PyAV) and written as JPEG.

Blocking (decoding takes milliseconds to tens of milliseconds): call it on a worker thread, never
on the event loop that sends video. A keyframe carries its parameter sets (``EncodedFrame``), so
it decodes on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO

import av

from rtcc.errors import RtccError
from rtcc.media import EncodedFrame

_DECODERS = {"h264": "h264", "h265": "hevc"}
JPEG_QUALITY = 92


class StillFailed(RtccError):
    pass


def latest_keyframe(frames: Sequence[EncodedFrame]) -> EncodedFrame | None:
    """The last keyframe of a stream's cached frames, or None when there is none."""
    return next((frame for frame in reversed(frames) if frame.keyframe), None)


def keyframe_jpeg(frame: EncodedFrame) -> tuple[bytes, int, int]:
    """The keyframe as a JPEG, with its width and height; raises ``StillFailed`` saying why."""
    name = _DECODERS.get(frame.codec)
    if name is None:
        raise StillFailed(f"a {frame.codec!r} picture cannot be decoded (H.264 or H.265 only)")
    decoder = av.CodecContext.create(name, "r")
    assert isinstance(decoder, av.VideoCodecContext)
    try:
        pictures = list(decoder.decode(av.Packet(frame.data))) + list(decoder.decode(None))
    except av.FFmpegError as exc:
        raise StillFailed(f"the camera's latest keyframe does not decode: {exc}") from None
    if not pictures:
        raise StillFailed("the camera's latest keyframe decodes to no picture")
    picture = pictures[-1]
    out = BytesIO()
    picture.to_image().save(out, format="JPEG", quality=JPEG_QUALITY)  # type: ignore[no-untyped-call]
    return out.getvalue(), int(picture.width), int(picture.height)
