"""CPU cost of one H.265 -> H.264 transcoded stream (``rtcc.transcode.H264Transcoder``).

``python -m benchmarks.h265_transcode [--seconds 4] [--input 1280x720] [--fps 15]`` encodes a
test pattern to H.265 with FFmpeg first (not counted), then decodes, scales and re-encodes it
with the transcoder for each output cap (640x360@15, 1280x720@15), measuring this process's
CPU time (decoder and encoder run single-threaded, as in the server; encoder start-up included).
``cores`` is CPU seconds per second of video: what one transcoded stream keeps busy while
someone watches it (all its viewers share it). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import av

from rtcc import bitstream
from rtcc.media import EncodedFrame
from rtcc.transcode import H264Transcoder, TranscodeLimits

CAPS = ((640, 360), (1280, 720))


def h265_units(path: Path, size: str, fps: int, seconds: float) -> list[bytes]:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}",
         "-t", str(seconds), "-c:v", "libx265", "-b:v", "2M", "-x265-params",
         f"bframes=0:keyint={fps * 2}:log-level=error", "-f", "hevc", str(path)],
        check=True, timeout=300,
    )
    parser = av.CodecContext.create("hevc", "r")
    data = path.read_bytes()
    units = [bytes(packet) for packet in parser.parse(data)]
    return units + [bytes(packet) for packet in parser.parse(b"")]


def measure(units: list[bytes], fps: int, width: int, height: int) -> dict[str, object]:
    transcoder = H264Transcoder("h265", TranscodeLimits(max_width=width, max_height=height,
                                                        max_fps=fps, bitrate=1_500_000
                                                        if width > 640 else 600_000))
    step = 90000 // fps
    started = time.process_time()
    out = 0
    for index, unit in enumerate(units):
        frame = EncodedFrame("h265", unit, index * step, bitstream.is_keyframe(unit, "h265"),
                             time.time())
        out += len(transcoder.transcode(frame))
    cpu = time.process_time() - started
    video_seconds = len(units) / fps
    return {"output": f"{transcoder.size[0]}x{transcoder.size[1]}@{fps}",
            "frames_in": len(units), "frames_out": out, "cpu_seconds": round(cpu, 3),
            "cores": round(cpu / video_seconds, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--input", default="1280x720")
    parser.add_argument("--fps", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        units = h265_units(Path(folder) / "in.h265", args.input, args.fps, args.seconds)
    results = [measure(units, args.fps, width, height) for width, height in CAPS]
    print(json.dumps({"input": f"{args.input}@{args.fps} H.265", "results": results}, indent=2))


if __name__ == "__main__":
    main()
