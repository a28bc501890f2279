"""Time to first decoded frame: this project's relay and a naive aiortc relay, GOP 1 s and 4 s.

``python -m benchmarks relay_ttff [--trials 20] [--gops 1,4]`` runs each relay in its own process
on a 720p30 2 Mbit/s clip, keeps one viewer connected (the camera is live, as in production), then
joins aiortc viewers one at a time at random points of the GOP and measures from the WHEP POST to
the first keyframe the viewer decodes (what a browser would show first). Prints JSON with
p50/p95/max per relay and GOP.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from typing import Any

import aiohttp
import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from benchmarks.relay_fanout import CLIP_DIR, start_server, stop
from benchmarks.relay_media import ClipSpec, make_clip
from benchmarks.relay_viewers import CountingViewer


async def first_frame_after_post(http: aiohttp.ClientSession, url: str, timeout: float) -> float:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    location = ""
    try:
        transceiver = pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        started = time.perf_counter()
        async with http.post(f"{url}/whep/cam1", data=pc.localDescription.sdp,
                             headers={"Content-Type": "application/sdp"},
                             timeout=aiohttp.ClientTimeout(total=30)) as response:
            answer = await response.text()
            if response.status != 201:
                raise RuntimeError(f"WHEP POST failed: {response.status} {answer}")
            location = response.headers["Location"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        async with asyncio.timeout(timeout):
            while True:
                # Frames FFmpeg conceals before any keyframe are garbage (a browser does not
                # show them): the clock stops at the first keyframe decoded.
                frame = await transceiver.receiver.track.recv()
                if isinstance(frame, av.VideoFrame) and frame.key_frame:
                    return time.perf_counter() - started
    finally:
        if location:
            async with http.delete(f"{url}{location}", timeout=aiohttp.ClientTimeout(total=10)):
                pass
        await pc.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def run_trials(url: str, trials: int, gop: float) -> list[float]:
    results = []
    async with aiohttp.ClientSession() as http:
        anchor = CountingViewer()
        await anchor.connect(http, url)
        await asyncio.sleep(2.0)
        try:
            for _ in range(trials):
                await asyncio.sleep(random.uniform(0.2, gop + 0.2))
                results.append(await first_frame_after_post(http, url, timeout=gop + 10))
        finally:
            await anchor.leave(http, url)
    return results


def measure(variant: str, gop: float, trials: int) -> dict[str, Any]:
    clip = make_clip(CLIP_DIR, ClipSpec(gop_seconds=gop))
    server, url = start_server(variant, clip)
    try:
        seconds = asyncio.run(run_trials(url, trials, gop))
    finally:
        stop(server)
    ms = [1000 * s for s in seconds]
    return {
        "variant": variant,
        "gop_seconds": gop,
        "trials": trials,
        "p50_ms": round(statistics.median(ms), 1),
        "p95_ms": round(percentile(ms, 0.95), 1),
        "max_ms": round(max(ms), 1),
        "min_ms": round(min(ms), 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks relay_ttff", description=__doc__)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--gops", default="1,4")
    parser.add_argument("--variants", default="naive,rtcc")
    args = parser.parse_args(argv)
    runs = []
    for gop in (float(g) for g in args.gops.split(",")):
        for variant in args.variants.split(","):
            result = measure(variant, gop, args.trials)
            print(json.dumps(result), file=sys.stderr, flush=True)
            runs.append(result)
    print(json.dumps({"benchmark": "relay_ttff", "clip": "1280x720 30 fps 2 Mbit/s H.264",
                      "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
