"""Soak: viewers joining and leaving for a long time; server memory and task count over time.

``python -m benchmarks relay_soak [--minutes 30] [--viewers 20] [--churn 4] [--period 10]
[--cameras 1] [--on-demand] [--variant rtcc]`` starts the server with ``cameras`` 720p30 2 Mbit/s
cameras (viewer ``i`` watches camera ``i % cameras + 1``; with ``--on-demand`` a camera starts
with its first viewer and stops 2 s after its last, so with more cameras than viewers cameras
come and go with the churn), reads its resident memory
and asyncio task count with no viewer, brings ``viewers`` viewers in (half, then the other half:
the memory a viewer costs is the difference, past one-time allocations), then every ``period``
seconds lets ``churn`` of them leave (WHEP DELETE) and as many new ones join, until ``minutes``
have passed; finally every viewer leaves and the server is read once more. ``GET /bench/stats``
of the server process gives RSS, tasks, threads, open fds, event-loop lag (worst over 10 s), live
cameras and viewers every ``sample`` seconds. The 30-minute soak
of the targets is ``--minutes 30``.

Prints JSON (memory per viewer at the start, RSS growth per minute over the second half, task
count range, and what is left once everybody has gone) and writes ``results/relay_soak.json``
and ``results/relay_soak.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

from benchmarks.relay_bench import (
    CLIP_DIR,
    Peer,
    ViewerPool,
    machine,
    process_times,
    progress,
    save,
)
from benchmarks.relay_media import ClipSpec, make_clip

MIB = 1024 * 1024


def slope(points: list[tuple[float, float]]) -> float:
    xs, ys = zip(*points, strict=True)
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var if var else 0


def sample(peer: Peer, start: float, phase: str) -> dict[str, Any]:
    stats = peer.stats()
    user, system = process_times(peer.pid)
    return {"t": round(time.monotonic() - start, 1), "phase": phase,
            "rss_mib": round(stats["rss"] / MIB, 2), "tasks": stats["tasks"],
            "task_kinds": stats.get("task_kinds", {}),
            "viewers": stats["viewers"], "cpu_seconds": round(user + system, 2),
            "threads": stats.get("threads"), "fds": stats.get("fds"),
            "loop_lag_max_ms": round(1000 * float(stats.get("loop_lag_max") or 0), 1),
            "live_cameras": stats.get("live_cameras"),
            "load_1m": round(os.getloadavg()[0], 2)}


def settle(peer: Peer, viewers: int, timeout: float = 30.0) -> None:
    """Wait until the server counts ``viewers`` viewers (sessions end asynchronously)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and peer.stats()["viewers"] != viewers:
        time.sleep(0.5)


def run(args: argparse.Namespace) -> dict[str, Any]:
    clip = make_clip(CLIP_DIR, ClipSpec(gop_seconds=1.0))
    samples: list[dict[str, Any]] = []
    joined = args.viewers
    server_args = ("--on-demand",) if args.on_demand else ()
    with Peer(args.variant, clip, cameras=args.cameras, server_args=server_args) as peer:
        start = time.monotonic()
        time.sleep(3)
        samples.append(sample(peer, start, "no viewers"))
        empty = samples[-1]
        half = args.viewers // 2
        with ViewerPool(peer, half, args.per_process) as pool:
            settle(peer, half)
            time.sleep(3)
            samples.append(sample(peer, start, "half the viewers"))
            partial = samples[-1]
            rest = args.viewers - half
            for index, client in enumerate(pool.clients):
                count = rest // len(pool.clients) + (1 if index < rest % len(pool.clients) else 0)
                if count:
                    pool.ask(f"join {count}", "joined", [client])
            settle(peer, args.viewers)
            time.sleep(3)
            samples.append(sample(peer, start, "viewers"))
            loaded = samples[-1]
            end = time.monotonic() + 60 * args.minutes
            next_sample = time.monotonic() + args.sample
            next_churn = time.monotonic() + args.period
            turn = 0
            while (now := time.monotonic()) < end:
                time.sleep(max(0.0, min(next_sample, next_churn, end) - now))
                if time.monotonic() >= next_churn:
                    client = pool.clients[turn % len(pool.clients)]
                    pool.ask(f"leave {args.churn}", "left", [client])
                    pool.ask(f"join {args.churn}", "joined", [client])
                    joined += args.churn
                    turn += 1
                    next_churn += args.period
                if time.monotonic() >= next_sample:
                    samples.append(sample(peer, start, "churn"))
                    progress(samples[-1])
                    next_sample += args.sample
            settle(peer, args.viewers)
            samples.append(sample(peer, start, "viewers"))
            final_loaded = samples[-1]
            failures = sum(int(r.get("failures", 0)) for r in pool.ask("mark", "mark"))
        settle(peer, 0)
        time.sleep(3)
        samples.append(sample(peer, start, "all left"))
        after = samples[-1]
        released = peer.release_memory() if args.variant == "rtcc" else None
    churn = [(s["t"] / 60, s["rss_mib"]) for s in samples if s["phase"] == "churn"]
    second_half = churn[len(churn) // 2:]
    tasks = [s["tasks"] for s in samples if s["phase"] == "churn"]
    during = [s for s in samples if s["phase"] == "churn"]

    def span(key: str) -> list[Any] | None:
        values = [s[key] for s in during if s.get(key) is not None]
        return [min(values), max(values)] if values else None

    lags = sorted(s["loop_lag_max_ms"] for s in during)
    return {
        "benchmark": "relay_soak",
        "variant": args.variant,
        "minutes": args.minutes,
        "viewers": args.viewers,
        "churn_every_period": args.churn,
        "period_seconds": args.period,
        "viewers_joined_in_total": joined,
        "viewers_failed_to_connect": failures,
        "rss_mib_no_viewers": empty["rss_mib"],
        "rss_mib_with_viewers_start": loaded["rss_mib"],
        "rss_mib_with_viewers_end": final_loaded["rss_mib"],
        "rss_mib_with_half_the_viewers": partial["rss_mib"],
        "memory_per_viewer_mib": round((loaded["rss_mib"] - partial["rss_mib"])
                                       / (args.viewers - half), 3),
        "memory_per_viewer_mib_first_viewers": round((partial["rss_mib"] - empty["rss_mib"])
                                                     / max(1, half), 3),
        "rss_growth_mib_per_minute_second_half": (round(slope(second_half), 3)
                                                  if len(second_half) > 2 else None),
        "rss_mib_after_all_left": after["rss_mib"],
        # The same process once freed memory went back to the system, as `rtcc serve` does
        # every few minutes: what stays is live, what went was only kept by the allocator.
        "rss_mib_after_release": (round(released["rss_after"] / MIB, 2)
                                  if released else None),
        "tasks_no_viewers": empty["tasks"],
        "tasks_during_churn_min_max": [min(tasks), max(tasks)] if tasks else None,
        "tasks_after_all_left": after["tasks"],
        "cameras": args.cameras,
        "on_demand": args.on_demand,
        "threads_no_viewers": empty.get("threads"),
        "threads_during_churn_min_max": span("threads"),
        "threads_after_all_left": after.get("threads"),
        "fds_no_viewers": empty.get("fds"),
        "fds_during_churn_min_max": span("fds"),
        "fds_after_all_left": after.get("fds"),
        "live_cameras_during_churn_min_max": span("live_cameras"),
        "loop_lag_ms_worst_per_10s_median": lags[len(lags) // 2] if lags else None,
        "loop_lag_ms_worst": lags[-1] if lags else None,
        "samples": samples,
    }


def plot(result: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    minutes = [s["t"] / 60 for s in samples]
    fig, (top, bottom, lag) = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    top.plot(minutes, [s["rss_mib"] for s in samples], marker=".", color="tab:blue")
    top.set_ylabel("server RSS (MiB)")
    top.set_ylim(bottom=0)
    cameras = result.get("cameras", 1)
    on_demand = " on demand" if result.get("on_demand") else ""
    top.set_title(f"Soak: {result['viewers']} viewers of {cameras} cameras{on_demand}, "
                  f"{result['churn_every_period']} leave and join every "
                  f"{result['period_seconds']:g} s, {result['minutes']:g} min "
                  f"({result['variant']})", fontsize="medium")
    bottom.plot(minutes, [s["tasks"] for s in samples], marker=".", color="tab:orange",
                label="asyncio tasks")
    bottom.plot(minutes, [s["viewers"] for s in samples], marker=".", color="tab:green",
                label="viewers")
    for key, label, color in (("threads", "threads", "tab:red"), ("fds", "open fds", "tab:purple"),
                              ("live_cameras", "live cameras", "tab:brown")):
        if any(s.get(key) is not None for s in samples):
            bottom.plot(minutes, [s.get(key) for s in samples], marker=".", color=color,
                        label=label)
    bottom.set_ylabel("count")
    bottom.set_ylim(bottom=0)
    bottom.legend(fontsize="small", ncol=3)
    lag.plot(minutes, [s.get("loop_lag_max_ms", 0) for s in samples], marker=".",
             color="tab:gray")
    lag.set_ylabel("worst loop lag\nper 10 s (ms)")
    lag.set_xlabel("minutes")
    lag.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks relay_soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--churn", type=int, default=4)
    parser.add_argument("--period", type=float, default=10.0)
    parser.add_argument("--sample", type=float, default=10.0)
    parser.add_argument("--variant", choices=("rtcc", "naive"), default="rtcc")
    parser.add_argument("--cameras", type=int, default=1)
    parser.add_argument("--on-demand", action="store_true",
                        help="cameras start with their first viewer and stop after the last")
    parser.add_argument("--per-process", type=int, default=10)
    parser.add_argument("--name", default="relay_soak", help="results file name")
    args = parser.parse_args(argv)
    started = machine()
    result = run(args)
    result["command"] = "python -m benchmarks relay_soak " + " ".join(argv or [])
    result["machine_at_start"] = started
    result["machine_at_end"] = machine()
    path = save(args.name, result)
    plot(result, str(path.with_suffix(".png")))
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))


if __name__ == "__main__":
    main()
