"""Server CPU per viewer of one camera: this relay, naive aiortc and Janus, side by side in one run.

``python -m benchmarks relay_fanout [--viewers 1,10,50,100,200] [--variants rtcc,naive,janus]
[--seconds 10] [--repeat 1] [--per-process 50]`` relays a 720p30 2 Mbit/s H.264 clip (about
230-240 RTP packets/s per viewer) to N viewers (``relay_viewers`` processes that count packets
without decoding) and reads each server's CPU time (utime + stime, all threads) over a window.
For each viewer count the variants run one after the other (their order rotates between
repeats), so the ratios come from the same conditions. Prints JSON (cores, cores per viewer,
microseconds per delivered packet, packets delivered, loss, the ratios to this relay) and writes
``results/relay_fanout.json`` and ``results/relay_fanout.png``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from benchmarks.relay_bench import (
    CLIP_DIR,
    RESULTS_DIR,
    Peer,
    ViewerPool,
    available_variants,
    cpu_window,
    machine,
    progress,
    save,
)
from benchmarks.relay_media import ClipSpec, make_clip

TITLE = "One 720p30 2 Mbit/s camera to N viewers: server CPU"


def measure(variant: str, viewers: int, args: argparse.Namespace, spec: ClipSpec
            ) -> dict[str, Any]:
    clip = make_clip(CLIP_DIR, spec)
    with Peer(variant, clip) as peer, ViewerPool(peer, viewers, args.per_process) as pool:
        time.sleep(args.warmup)
        result = cpu_window(peer, pool, args.seconds)
    return {"variant": variant, **result}


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The median run (by cores per viewer) of each variant and viewer count."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["variant"], run["viewers_requested"]), []).append(run)
    chosen = []
    for (_variant, _viewers), group in sorted(groups.items(), key=lambda g: (g[0][1], g[0][0])):
        ordered = sorted(group, key=lambda r: r["server_cores_per_viewer"] or 0)
        median = dict(ordered[(len(ordered) - 1) // 2])
        median["repeats"] = len(group)
        if len(group) > 1:
            median["cores_per_viewer_all"] = [r["server_cores_per_viewer"] for r in group]
        chosen.append(median)
    return chosen


def full_rate(summary: list[dict[str, Any]]) -> None:
    """Add what share of the stream each viewer really got (bytes per viewer against the same
    server's at its smallest viewer count: frames a saturated server skips and packets lost
    both count) and the CPU per viewer that share implies at the full rate."""
    for variant in {r["variant"] for r in summary}:
        rows = sorted((r for r in summary if r["variant"] == variant), key=lambda r: r["viewers"])
        reference = rows[0]["mbit_per_viewer"]
        for row in rows:
            share = min(1.0, row["mbit_per_viewer"] / reference) if reference else 0.0
            row["delivered_share"] = round(share, 3)
            row["server_cores_per_full_rate_viewer"] = (
                round(row["server_cores_per_viewer"] / share, 5) if share else None)


def ratios(summary: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Other variants' CPU per full-rate viewer divided by this relay's, per viewer count."""
    out: dict[str, dict[str, float]] = {}
    key = "server_cores_per_full_rate_viewer"
    for viewers in sorted({r["viewers_requested"] for r in summary}):
        by = {r["variant"]: r for r in summary if r["viewers_requested"] == viewers}
        ours = by.get("rtcc", {}).get(key)
        if not ours:
            continue
        for variant, run in by.items():
            if variant != "rtcc" and run.get(key):
                out.setdefault(f"{variant}_over_rtcc", {})[str(viewers)] = round(
                    run[key] / ours, 2)
    return out


def marginal(summary: list[dict[str, Any]]) -> dict[str, float]:
    """Cores per additional viewer (least-squares slope of cores against viewers)."""
    out = {}
    for variant in sorted({r["variant"] for r in summary}):
        points = [(r["viewers"], r["server_cores"]) for r in summary if r["variant"] == variant]
        if len(points) < 2:
            continue
        xs, ys = zip(*points, strict=True)
        mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
        var = sum((x - mean_x) ** 2 for x in xs)
        if var:
            out[variant] = round(sum((x - mean_x) * (y - mean_y)
                                     for x, y in zip(xs, ys, strict=True)) / var, 5)
    return out


def plot(summary: list[dict[str, Any]], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for variant in sorted({r["variant"] for r in summary}):
        rows = sorted((r for r in summary if r["variant"] == variant), key=lambda r: r["viewers"])
        xs = [r["viewers"] for r in rows]
        left.plot(xs, [1000 * r["server_cores_per_viewer"] for r in rows], marker="o",
                  label=variant)
        right.plot(xs, [r["server_cores"] for r in rows], marker="o", label=variant)
        for row in rows:
            share = row.get("delivered_share", 1.0)
            if share is not None and share < 0.97:
                right.annotate(f"{variant}: {100 * share:.0f}% of the stream delivered",
                               (row["viewers"], row["server_cores"]), fontsize=8,
                               textcoords="offset points", xytext=(-150, 8))
    left.axhline(3.0, color="grey", linestyle="--", linewidth=1, label="target (3 millicores)")
    left.set_xlabel("viewers")
    left.set_ylabel("server millicores per viewer")
    left.set_xscale("log")
    left.set_ylim(bottom=0)
    left.legend()
    right.set_xlabel("viewers")
    right.set_ylabel("server cores (utime + stime)")
    right.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks relay_fanout", description=__doc__)
    parser.add_argument("--viewers", default="1,10,50,100,200")
    parser.add_argument("--variants", default="rtcc,naive,janus")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--per-process", type=int, default=50,
                        help="viewers per viewer process")
    parser.add_argument("--name", default="relay_fanout", help="results file name")
    parser.add_argument("--replot", action="store_true",
                        help="draw the PNG again from the saved JSON, measure nothing")
    args = parser.parse_args(argv)
    if args.replot:
        path = RESULTS_DIR / f"{args.name}.json"
        plot(json.loads(path.read_text())["summary"], str(path.with_suffix(".png")), TITLE)
        return
    variants = available_variants(args.variants)
    spec = ClipSpec(gop_seconds=1.0)
    runs = []
    started = machine()
    for viewers in (int(v) for v in args.viewers.split(",")):
        for repeat in range(args.repeat):
            shift = repeat % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                result = measure(variant, viewers, args, spec)
                result["viewers_requested"] = viewers
                progress(result)
                runs.append(result)
    summary = summarize(runs)
    full_rate(summary)
    output = {
        "benchmark": "relay_fanout",
        "command": "python -m benchmarks relay_fanout " + " ".join(argv or []),
        "clip": {"width": spec.width, "height": spec.height, "fps": spec.fps,
                 "bitrate": spec.bitrate, "gop_seconds": spec.gop_seconds},
        "machine_at_start": started,
        "machine_at_end": machine(),
        "summary": summary,
        "other_over_rtcc_cpu_per_full_rate_viewer": ratios(summary),
        "marginal_cores_per_viewer": marginal(summary),
        "runs": runs,
    }
    path = save(args.name, output)
    plot(summary, str(path.with_suffix(".png")), TITLE)
    print(json.dumps(output, indent=2))


if __name__ == "__main__":
    main()
