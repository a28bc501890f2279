"""Server CPU to record a camera: a CameraRecorder beside a subscriber that only drains.

``python -m benchmarks evidence_recorder [--frames 3000] [--kbps 2000] [--fps 30]
[--gop 30] [--segment 10]`` pushes synthetic H.264-shaped frames (Annex-B start code, the
bitrate's average size, a keyframe every ``--gop`` frames) into a ``rtcc.hub.Stream`` at full
speed, twice, and measures this process's CPU time (all threads):

* ``drain``: one subscriber that reads and drops every frame (the cost of being a consumer);
* ``record``: a ``recording.recorder.CameraRecorder`` writing the frames into segments
  (batching on the loop, writes + SHA-256 + fsync at each segment's close in its thread,
  SQLite rows).

The difference per frame is the recorder's overhead; ``cores_per_camera`` scales it to the
given frame rate. Files go to a temporary folder on the same disk as ``--dir`` (default /tmp).
Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from evidence.store import EvidenceStore
from recording.recorder import CameraRecorder, RecorderSettings, RecorderState
from rtcc.hub import FrameSink, StreamHub, StreamSettings
from rtcc.media import VIDEO_CLOCK_RATE, EncodedFrame


class _PushSource:
    def __init__(self) -> None:
        self.sink: FrameSink | None = None

    async def start(self, sink: FrameSink) -> None:
        self.sink = sink

    async def aclose(self) -> None:
        self.sink = None

    def stats(self) -> dict[str, object]:
        return {}


def _frames(count: int, kbps: int, fps: int, gop: int) -> list[EncodedFrame]:
    size = max(64, kbps * 1000 // 8 // fps)
    start = time.time()
    out = []
    for i in range(count):
        key = i % gop == 0
        body = (b"\x00\x00\x00\x01" + (b"\x65" if key else b"\x41")
                + bytes([i % 251]) * ((size * 3 if key else size) - 5))
        out.append(EncodedFrame("h264", body, i * VIDEO_CLOCK_RATE // fps, key,
                                start + i / fps))
    return out


async def _run(frames: list[EncodedFrame], mode: str, folder: Path, segment: float
               ) -> dict[str, Any]:
    source = _PushSource()
    store = EvidenceStore.open_in(folder)
    async with StreamHub() as hub:
        stream = hub.register("bench", "main", lambda: source,
                              StreamSettings(close_after=0, subscriber_queue=len(frames) + 10))
        recorder = None
        drained = 0
        if mode == "record":
            recorder = CameraRecorder(stream, store, folder / "evidence",
                                      RecorderSettings(segment_seconds=segment, min_free_bytes=0,
                                                       queue_frames=len(frames) + 10),
                                      reason="benchmark", on_alert=lambda *_: None)
            recorder.start()
        else:
            sub = await stream.subscribe("drain", maxsize=len(frames) + 10, wait=False)
        while source.sink is None:
            await asyncio.sleep(0.01)
        started_cpu, started = time.process_time(), time.perf_counter()
        for i, frame in enumerate(frames):
            source.sink.push_frame(frame)
            if i % 30 == 29:
                await asyncio.sleep(0)
                if mode == "drain":
                    while sub.get_nowait() is not None:
                        drained += 1
        if recorder is not None:
            while recorder.frames_written < len(frames):
                await asyncio.sleep(0.005)
            await recorder.aclose()
            assert recorder.state is RecorderState.STOPPED
        else:
            while sub.get_nowait() is not None:
                drained += 1
            sub.close()
        cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started
    store.close()
    result: dict[str, Any] = {"cpu_seconds": round(cpu, 4), "wall_seconds": round(wall, 4),
                              "frames": len(frames)}
    if recorder is not None:
        stats = recorder.stats()
        result.update(segments=stats["segments_closed"], bytes=stats["bytes"],
                      writer_thread_seconds=stats["writer_seconds"])
    else:
        result["drained"] = drained
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks evidence_recorder")
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--kbps", type=int, default=2000)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--gop", type=int, default=30)
    parser.add_argument("--segment", type=float, default=10.0)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args(argv)
    frames = _frames(args.frames, args.kbps, args.fps, args.gop)
    results = {}
    for mode in ("drain", "record"):
        with tempfile.TemporaryDirectory(dir=args.dir) as folder:
            results[mode] = asyncio.run(_run(frames, mode, Path(folder), args.segment))
    extra = results["record"]["cpu_seconds"] - results["drain"]["cpu_seconds"]
    per_frame_us = extra / args.frames * 1e6
    print(json.dumps({
        "benchmark": "evidence_recorder",
        "frames": args.frames, "kbps": args.kbps, "fps": args.fps,
        "video_seconds": round(args.frames / args.fps, 1),
        "drain": results["drain"], "record": results["record"],
        "recorder_overhead_us_per_frame": round(per_frame_us, 2),
        "recorder_overhead_cores_per_camera": round(per_frame_us * args.fps / 1e6, 5),
        "record_vs_drain_cpu_ratio": round(
            results["record"]["cpu_seconds"] / max(results["drain"]["cpu_seconds"], 1e-9), 2),
    }, indent=2))


if __name__ == "__main__":
    main()
