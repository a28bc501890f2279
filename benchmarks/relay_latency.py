"""Latency the relay adds: capture time carried in every frame, read where the viewer receives it.

``python -m benchmarks relay_latency [--viewers 1,10,50,100] [--variants rtcc,naive,janus]
[--seconds 10]``: the benchmark's own source writes the wall-clock time into each frame of the
720p30 2 Mbit/s clip as an SEI "user data unregistered" NAL unit just before handing the frame
on (``benchmarks.stamp``); the server forwards it untouched; every viewer decrypts the first
packet of each frame, reads the time and subtracts it from the packet's arrival time. All
processes run on one machine and share its clock.

Where the stamp is written: for this relay, when the camera's frame is pushed into the stream
hub (ingest left out, as for the others); for Janus, just before the frame is sent to its RTP
mountpoint (``benchmarks.rtp_feeder``); for naive aiortc, when its track hands the frame to
``MediaRelay``. Prints JSON (p50/p95/p99/max per server and viewer count, samples counted) and
writes ``results/relay_latency.json`` and ``results/relay_latency.png``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from benchmarks.relay_bench import (
    CLIP_DIR,
    Peer,
    ViewerPool,
    available_variants,
    cpu_window,
    machine,
    percentile,
    progress,
    save,
)
from benchmarks.relay_media import ClipSpec, make_clip


def measure(variant: str, viewers: int, args: argparse.Namespace) -> dict[str, Any]:
    clip = make_clip(CLIP_DIR, ClipSpec(gop_seconds=1.0))
    with Peer(variant, clip, stamp=True) as peer, \
            ViewerPool(peer, viewers, args.per_process, latency=True) as pool:
        time.sleep(args.warmup)
        pool.latency_samples()  # forget what arrived while viewers were still joining
        window = cpu_window(peer, pool, args.seconds)
        samples = pool.latency_samples()
    result: dict[str, Any] = {"variant": variant, "viewers": viewers, "samples": len(samples)}
    if samples:
        result.update({
            "p50_ms": round(statistics.median(samples), 2),
            "p95_ms": round(percentile(samples, 0.95), 2),
            "p99_ms": round(percentile(samples, 0.99), 2),
            "max_ms": round(max(samples), 2),
            "min_ms": round(min(samples), 2),
        })
    result.update({
        "frames_expected": round(viewers * args.seconds * 30),
        "server_cores": window["server_cores"],
        "loss": window["loss"],
        "client_cores": window["client_cores"],
        "load_average_1m": window["load_average_1m"],
    })
    return result


def plot(runs: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(7, 4.2))
    for variant in sorted({r["variant"] for r in runs}):
        rows = sorted((r for r in runs if r["variant"] == variant and "p95_ms" in r),
                      key=lambda r: r["viewers"])
        xs = [r["viewers"] for r in rows]
        line = axis.plot(xs, [r["p95_ms"] for r in rows], marker="o", label=f"{variant} p95")
        axis.plot(xs, [r["p50_ms"] for r in rows], marker=".", linestyle=":",
                  color=line[0].get_color(), label=f"{variant} p50")
    axis.axhline(30, color="grey", linestyle="--", linewidth=1, label="target p95 30 ms")
    axis.set_xscale("log")
    axis.set_xlabel("viewers")
    axis.set_ylabel("capture to arrival at the viewer (ms)")
    axis.set_title("Latency added by the relay (720p30 2 Mbit/s, one camera)")
    axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks relay_latency",
                                     description=__doc__)
    parser.add_argument("--viewers", default="1,10,50,100")
    parser.add_argument("--variants", default="rtcc,naive,janus")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--per-process", type=int, default=50)
    parser.add_argument("--name", default="relay_latency", help="results file name")
    args = parser.parse_args(argv)
    started = machine()
    runs = []
    variants = available_variants(args.variants)
    for viewers in (int(v) for v in args.viewers.split(",")):
        for variant in variants:
            result = measure(variant, viewers, args)
            progress(result)
            runs.append(result)
    output = {"benchmark": "relay_latency",
              "command": "python -m benchmarks relay_latency " + " ".join(argv or []),
              "clip": "1280x720 30 fps 2 Mbit/s H.264, GOP 1 s",
              "machine_at_start": started, "machine_at_end": machine(), "runs": runs}
    path = save(args.name, output)
    plot(runs, str(path.with_suffix(".png")))
    print(json.dumps(output, indent=2))


if __name__ == "__main__":
    main()
