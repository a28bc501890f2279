"""Many cameras, few viewers each: server CPU of this relay, naive aiortc and Janus in one run.

``python -m benchmarks relay_cameras [--cameras 10,25,50] [--per-camera 2]
[--variants rtcc,naive,janus] [--seconds 10]`` serves C cameras, each replaying the 720p30
2 Mbit/s clip in real time (this relay: a ``ReplaySource`` per camera in the hub; naive aiortc: a
``MediaPlayer`` per camera; Janus: one RTP mountpoint per camera fed by ``rtp_feeder``), with
``per-camera`` viewers on each, and reads each server's CPU (utime + stime) over a window. It
also reads the server's CPU before any viewer joins: the cameras' input alone (this relay
replays them inside its own process, Janus receives them as RTP, naive aiortc reads nothing
until someone watches), and the difference, the cost of serving the viewers. This
is the shape of an RTCC video wall: many streams, each watched by a handful of analysts, where
the per-stream costs (camera input, fan-out loop, packetization) count as much as the
per-viewer ones. Cameras start at staggered moments within a frame interval. Prints JSON and
writes ``results/relay_cameras.json`` and ``results/relay_cameras.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from benchmarks.relay_bench import (
    CLIP_DIR,
    Peer,
    ViewerPool,
    available_variants,
    cpu_window,
    machine,
    process_times,
    progress,
    save,
)
from benchmarks.relay_media import ClipSpec, make_clip


def measure(variant: str, cameras: int, args: argparse.Namespace) -> dict[str, Any]:
    clip = make_clip(CLIP_DIR, ClipSpec(gop_seconds=1.0))
    viewers = cameras * args.per_camera
    with Peer(variant, clip, cameras=cameras) as peer:
        time.sleep(args.warmup)
        user0, sys0 = process_times(peer.pid)
        started = time.monotonic()
        time.sleep(args.seconds / 2)
        user1, sys1 = process_times(peer.pid)
        idle = (user1 + sys1 - user0 - sys0) / (time.monotonic() - started)
        with ViewerPool(peer, viewers, args.per_process) as pool:
            time.sleep(args.warmup)
            window = cpu_window(peer, pool, args.seconds)
    return {"variant": variant, "cameras": cameras, "viewers_per_camera": args.per_camera,
            "server_cores_per_camera": round(window["server_cores"] / cameras, 5),
            "server_cores_without_viewers": round(idle, 4),
            "server_cores_for_viewers": round(window["server_cores"] - idle, 4), **window}


def plot(runs: list[dict[str, Any]], path: str, per_camera: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(7, 4.2))
    for variant in sorted({r["variant"] for r in runs}):
        rows = sorted((r for r in runs if r["variant"] == variant), key=lambda r: r["cameras"])
        axis.plot([r["cameras"] for r in rows], [r["server_cores"] for r in rows], marker="o",
                  label=variant)
    axis.set_xlabel(f"cameras ({per_camera} viewers each)")
    axis.set_ylabel("server cores (utime + stime)")
    axis.set_title("Many 720p30 2 Mbit/s cameras: server CPU")
    axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks relay_cameras",
                                     description=__doc__)
    parser.add_argument("--cameras", default="10,25,50")
    parser.add_argument("--per-camera", type=int, default=2)
    parser.add_argument("--variants", default="rtcc,naive,janus")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--per-process", type=int, default=50)
    parser.add_argument("--name", default="relay_cameras", help="results file name")
    args = parser.parse_args(argv)
    started = machine()
    variants = available_variants(args.variants)
    runs = []
    for cameras in (int(c) for c in args.cameras.split(",")):
        for variant in variants:
            result = measure(variant, cameras, args)
            progress(result)
            runs.append(result)
    ratios: dict[str, dict[str, float]] = {}
    for cameras in sorted({r["cameras"] for r in runs}):
        by = {r["variant"]: r["server_cores"] for r in runs if r["cameras"] == cameras}
        for variant, cores in by.items():
            if variant != "rtcc" and by.get("rtcc"):
                ratios.setdefault(f"{variant}_over_rtcc", {})[str(cameras)] = round(
                    cores / by["rtcc"], 2)
    output = {"benchmark": "relay_cameras",
              "command": "python -m benchmarks relay_cameras " + " ".join(argv or []),
              "clip": "1280x720 30 fps 2 Mbit/s H.264, GOP 1 s, per camera",
              "machine_at_start": started, "machine_at_end": machine(), "runs": runs,
              "other_over_rtcc_cpu": ratios}
    path = save(args.name, output)
    plot(runs, str(path.with_suffix(".png")), args.per_camera)
    print(json.dumps(output, indent=2))


if __name__ == "__main__":
    main()
