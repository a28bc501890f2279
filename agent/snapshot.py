"""A JPEG from an RTSP stream, for cameras without an ONVIF snapshot URI: the first picture
that decodes, in a thread, within a time limit."""

from __future__ import annotations

import asyncio

import av

from ingest.rtsp import RtspTarget
from rtcc.camera_url import scrub, url_with_credentials
from rtcc.errors import SourceUnavailable

MAX_PACKETS = 600


def _grab(target: RtspTarget, timeout: float) -> bytes:
    import cv2

    url = url_with_credentials(target.url, target.username, target.password)
    try:
        with av.open(url, options={"rtsp_transport": target.transport},
                     timeout=(timeout, timeout)) as container:
            stream = container.streams.video[0]
            for count, packet in enumerate(container.demux(stream)):
                if count > MAX_PACKETS:
                    break
                for frame in packet.decode():
                    ok, encoded = cv2.imencode(".jpg", frame.to_ndarray(format="bgr24"),
                                               [cv2.IMWRITE_JPEG_QUALITY, 85])
                    if ok:
                        return bytes(encoded.tobytes())
    except (av.FFmpegError, IndexError, OSError) as exc:
        reason = scrub(str(exc), target.password)
        raise SourceUnavailable(f"no picture from {target}: {reason}") from None
    raise SourceUnavailable(f"no picture from {target}: nothing decoded")


async def grab_jpeg(target: RtspTarget, open_timeout: float) -> bytes:
    async with asyncio.timeout(open_timeout * 2):
        return await asyncio.to_thread(_grab, target, open_timeout)
