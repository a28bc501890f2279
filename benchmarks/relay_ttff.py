"""Time to first decoded frame: this relay, naive aiortc and Janus, camera GOP 1 s and 4 s.

``python -m benchmarks relay_ttff [--trials 20] [--gops 1,4] [--variants rtcc,naive,janus]``
runs each server on a 720p30 2 Mbit/s clip whose keyframes come every GOP seconds, keeps one
viewer watching (the camera is live, as in production), then lets aiortc viewers join one at a
time at random points of the GOP and measures from the request that starts the view (WHEP
``POST``; for Janus the streaming plugin's ``watch``) to the first keyframe the viewer decodes
(what a browser shows first). Prints JSON with p50/p95/max per server and GOP and writes
``results/relay_ttff.json`` and ``results/relay_ttff.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from typing import Any

import aiohttp
import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from benchmarks.relay_bench import (
    CLIP_DIR,
    Peer,
    ViewerPool,
    available_variants,
    machine,
    percentile,
    progress,
    save,
)
from benchmarks.relay_media import ClipSpec, make_clip
from benchmarks.relay_viewers import HTTP_TIMEOUT, JanusSession


async def first_keyframe(track: MediaStreamTrack, started: float) -> float:
    while True:
        # Frames FFmpeg conceals before any keyframe are garbage (a browser does not show
        # them): the clock stops at the first keyframe decoded.
        frame = await track.recv()
        if isinstance(frame, av.VideoFrame) and frame.key_frame:
            return time.perf_counter() - started


async def whep_trial(http: aiohttp.ClientSession, url: str, timeout: float) -> float:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    location = ""
    try:
        transceiver = pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        started = time.perf_counter()
        async with http.post(f"{url}/whep/cam1", data=pc.localDescription.sdp,
                             headers={"Content-Type": "application/sdp"},
                             timeout=HTTP_TIMEOUT) as response:
            answer = await response.text()
            if response.status != 201:
                raise RuntimeError(f"WHEP POST failed: {response.status} {answer}")
            location = response.headers["Location"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        async with asyncio.timeout(timeout):
            return await first_keyframe(transceiver.receiver.track, started)
    finally:
        if location:
            async with http.delete(f"{url}{location}", timeout=HTTP_TIMEOUT):
                pass
        await pc.close()


async def janus_trial(janus: JanusSession, timeout: float) -> float:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    handle = await janus.attach()
    try:
        started = time.perf_counter()
        offer = await janus.request(handle, {"request": "watch", "id": 1})
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await janus.request(handle, {"request": "start"},
                            jsep={"type": "answer", "sdp": pc.localDescription.sdp})
        track = pc.getTransceivers()[0].receiver.track
        async with asyncio.timeout(timeout):
            return await first_keyframe(track, started)
    finally:
        await janus.detach(handle)
        await pc.close()


async def run_trials(peer: Peer, trials: int, gop: float) -> list[float]:
    results = []
    async with aiohttp.ClientSession() as http:
        janus = JanusSession(http, peer.url) if peer.variant == "janus" else None
        if janus is not None:
            await janus.start()
        try:
            for _ in range(trials):
                await asyncio.sleep(random.uniform(0.2, gop + 0.2))
                if janus is not None:
                    results.append(await janus_trial(janus, gop + 10))
                else:
                    results.append(await whep_trial(http, peer.url, gop + 10))
        finally:
            if janus is not None:
                await janus.close()
    return results


def measure(variant: str, gop: float, trials: int) -> dict[str, Any]:
    clip = make_clip(CLIP_DIR, ClipSpec(gop_seconds=gop))
    with Peer(variant, clip) as peer, ViewerPool(peer, 1):
        time.sleep(2.0)
        seconds = asyncio.run(run_trials(peer, trials, gop))
    ms = [round(1000 * s, 1) for s in seconds]
    return {
        "variant": variant,
        "gop_seconds": gop,
        "trials": trials,
        "p50_ms": round(statistics.median(ms), 1),
        "p95_ms": round(percentile(ms, 0.95), 1),
        "max_ms": max(ms),
        "min_ms": min(ms),
        "samples_ms": ms,
    }


def plot(runs: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gops = sorted({r["gop_seconds"] for r in runs})
    fig, axes = plt.subplots(1, len(gops), figsize=(5.5 * len(gops), 4.2), squeeze=False)
    for axis, gop in zip(axes[0], gops, strict=True):
        rows = [r for r in runs if r["gop_seconds"] == gop]
        axis.boxplot([r["samples_ms"] for r in rows], whis=(0, 100))
        axis.set_xticks(range(1, len(rows) + 1), [r["variant"] for r in rows])
        for position, row in enumerate(rows, start=1):
            xs = [position + random.uniform(-0.12, 0.12) for _ in row["samples_ms"]]
            axis.scatter(xs, row["samples_ms"], s=9, alpha=0.6)
        axis.axhline(400, color="grey", linestyle="--", linewidth=1, label="target p95 400 ms")
        axis.set_yscale("log")
        axis.set_ylabel("request to first decoded keyframe (ms)")
        axis.set_title(f"camera keyframe every {gop:g} s")
        axis.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks relay_ttff", description=__doc__)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--gops", default="1,4")
    parser.add_argument("--variants", default="rtcc,naive,janus")
    parser.add_argument("--name", default="relay_ttff", help="results file name")
    args = parser.parse_args(argv)
    started = machine()
    runs = []
    for gop in (float(g) for g in args.gops.split(",")):
        for variant in available_variants(args.variants):
            result = measure(variant, gop, args.trials)
            progress({k: v for k, v in result.items() if k != "samples_ms"})
            runs.append(result)
    output = {"benchmark": "relay_ttff",
              "command": "python -m benchmarks relay_ttff " + " ".join(argv or []),
              "clip": "1280x720 30 fps 2 Mbit/s H.264",
              "machine_at_start": started, "machine_at_end": machine(), "runs": runs}
    path = save(args.name, output)
    plot(runs, str(path.with_suffix(".png")))
    print(json.dumps(output, indent=2))


if __name__ == "__main__":
    main()
