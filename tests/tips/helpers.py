"""Files with the metadata a phone leaves (made here, with Pillow and ffmpeg), and the tip
line's calls as a tipster makes them."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image

GPS_LAT = (41.0, 52.0, 33.75)
GPS_LON = (12.0, 29.0, 7.5)
CAMERA_MAKE = "TipCanaryPhone"
VIDEO_CREATED = "2021-03-04T05:06:07Z"
VIDEO_LOCATION = "+41.8765+012.4853/"
TIPSTER_UA = "TipsterBrowser/7.7 (distinctive-ua-canary)"
FORWARDED_FOR = "203.0.113.77"


def jpeg_with_gps() -> bytes:
    """A 64x32 photo whose EXIF says: rotate 90 degrees, taken by CAMERA_MAKE at GPS_LAT/LON."""
    image = Image.new("RGB", (64, 32), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the picture must be turned 90 degrees clockwise
    exif[0x010F] = CAMERA_MAKE
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: GPS_LAT, 3: "E", 4: GPS_LON})
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    data = buffer.getvalue()
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825), "the test photo has no GPS"
    return data


def mp4_with_metadata(folder: Path, seconds: int = 2) -> bytes:
    """An H.264/AAC MP4 with a creation date and a location atom, made by ffmpeg."""
    target = folder / "phone.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10",
         "-f", "lavfi", "-i", "sine=frequency=440",
         "-t", str(seconds), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
         "-metadata", f"creation_time={VIDEO_CREATED}",
         "-metadata", f"location={VIDEO_LOCATION}", str(target)],
        check=True, timeout=120)
    data = target.read_bytes()
    target.unlink()
    return data


def probe_tags(path: Path) -> str:
    """Every container and stream tag ffprobe finds, as text."""
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format_tags:stream_tags", "-of", "json",
         str(path)], check=True, capture_output=True, text=True, timeout=60)
    return done.stdout


async def call(session: aiohttp.ClientSession, method: str, url: str, expect: int,
               **kwargs: Any) -> Any:
    async with session.request(method, url, **kwargs) as response:
        text = await response.text()
        assert response.status == expect, f"{method} {url}: {response.status} {text}"
        return await response.json(content_type=None) if text else None


async def send_tip(session: aiohttp.ClientSession, base: str, **fields: Any) -> dict[str, Any]:
    body = {"what": "A grey van without plates idled behind the pharmacy for an hour",
            "where": "Behind 12 Main St", "when": "today 9 pm"}
    body.update(fields)
    result: dict[str, Any] = await call(session, "POST", f"{base}/tips/api/tips", 201, json=body,
                                        headers={"Origin": base})
    return result


async def upload(session: aiohttp.ClientSession, base: str, tip: dict[str, Any], data: bytes,
                 chunk: int = 4096) -> dict[str, Any]:
    """Start an upload and send ``data`` in chunks; the last answer."""
    started = await call(session, "POST", f"{base}/tips/api/uploads", 201, headers={
        "Origin": base}, json={"number": tip["number"], "passphrase": tip["passphrase"],
                               "size": len(data)})
    upload_id = started["upload"]["id"]
    answer: dict[str, Any] = started["upload"]
    offset = 0
    while offset < len(data):
        answer = await call(session, "PUT",
                            f"{base}/tips/api/uploads/{upload_id}?offset={offset}", 200,
                            data=data[offset:offset + chunk], headers={"Origin": base})
        offset = answer["received"]
    return answer
