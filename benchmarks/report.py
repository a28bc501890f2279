"""The results table: ``python -m benchmarks report [--write] [--prefix quick_]``.

Reads the JSON files the benchmarks left in ``benchmarks/results/`` and prints a Markdown table
of each measured figure against its target (``../shared/TARGETS.md``) and the peers measured in
the same run, with the command that produced it. ``--write`` puts the table into
``benchmarks/RESULTS.md`` between its ``results:begin`` and ``results:end`` markers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.relay_bench import RESULTS_DIR

RESULTS_MD = Path(__file__).parent / "RESULTS.md"
BEGIN = "<!-- results:begin -->"
END = "<!-- results:end -->"
PEERS = ("rtcc", "naive", "janus")


def load(prefix: str, name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{prefix}{name}.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def verdict(ok: bool | None) -> str:
    return "" if ok is None else ("met" if ok else "**missed**")


def mc(value: float | None) -> str:
    """Cores as millicores."""
    return "-" if value is None else f"{1000 * value:.2f} m"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def fanout_rows(data: dict[str, Any]) -> list[list[str]]:
    rows = []
    summary = data["summary"]
    counts = sorted({r["viewers_requested"] for r in summary})
    ratios = data.get("other_over_rtcc_cpu_per_full_rate_viewer", {})
    command = data["command"].strip()
    for viewers in counts:
        if viewers < 10:
            continue
        by = {r["variant"]: r for r in summary if r["viewers_requested"] == viewers}
        ours = by.get("rtcc")
        if ours is None:
            continue
        naive_ratio = ratios.get("naive_over_rtcc", {}).get(str(viewers))
        janus_ratio = ratios.get("janus_over_rtcc", {}).get(str(viewers))

        def cell(variant: str, by: dict[str, Any] = by) -> str:
            run = by.get(variant)
            if run is None:
                return "-"
            text = mc(run["server_cores_per_viewer"])
            share = run.get("delivered_share", 1.0)
            if share is not None and share < 0.97:
                text += (f" at {100 * share:.0f}% of the stream"
                         f" ({mc(run.get('server_cores_per_full_rate_viewer'))} full rate)")
            if run.get("loss"):
                text += f", loss {100 * run['loss']:.1f}%"
            return text

        per_viewer = (ours.get("server_cores_per_full_rate_viewer")
                      or ours["server_cores_per_viewer"])
        rows.append([
            f"server CPU per viewer, 1 camera x {viewers} viewers",
            "<= 3 m; >= 3x less than naive; >= 2x less than Janus",
            cell("rtcc"), cell("naive"), cell("janus"),
            f"naive {naive_ratio or '-'}x, Janus {janus_ratio or '-'}x",
            verdict(per_viewer <= 0.003
                    and (naive_ratio is None or naive_ratio >= 3)
                    and (janus_ratio is None or janus_ratio >= 2)),
            f"`{command}`",
        ])
    marginal = data.get("marginal_cores_per_viewer", {})
    if marginal:
        rows.append([
            "marginal CPU per additional viewer (slope over all counts)", "<= 3 m",
            mc(marginal.get("rtcc")), mc(marginal.get("naive")), mc(marginal.get("janus")),
            "", verdict(marginal.get("rtcc", 1) <= 0.003), f"`{command}`",
        ])
    return rows


def before_after_rows(data: dict[str, Any]) -> list[list[str]]:
    rows = []
    command = data["command"].strip()
    summary = data["summary"]
    before = next((r["variant"] for r in summary if r["variant"].startswith("rtcc@")), None)
    for viewers in sorted({r["viewers_requested"] for r in summary}):
        by = {r["variant"]: r for r in summary if r["viewers_requested"] == viewers}
        if "rtcc" not in by or before not in by:
            continue
        ours, old = by["rtcc"], by[before]
        naive = by.get("naive")
        gain = old["server_cores_per_viewer"] / ours["server_cores_per_viewer"]
        rows.append([
            f"relay before this work ({before}) and now, 1 camera x {viewers} viewers",
            "(the same relay before; naive aiortc beside)",
            f"{mc(ours['server_cores_per_viewer'])} now, {mc(old['server_cores_per_viewer'])}"
            f" before ({gain:.2f}x less CPU)",
            mc(naive["server_cores_per_viewer"]) if naive else "-", "-",
            (f"naive {naive['server_cores_per_viewer'] / ours['server_cores_per_viewer']:.2f}x"
             f" now, {naive['server_cores_per_viewer'] / old['server_cores_per_viewer']:.2f}x"
             " before") if naive else "",
            "", f"`{command}`",
        ])
    return rows


def cameras_rows(data: dict[str, Any]) -> list[list[str]]:
    rows = []
    command = data["command"].strip()
    for cameras in sorted({r["cameras"] for r in data["runs"]}):
        by = {r["variant"]: r for r in data["runs"] if r["cameras"] == cameras}
        if "rtcc" not in by:
            continue
        per_camera = by["rtcc"]["viewers_per_camera"]

        def cell(variant: str, by: dict[str, Any] = by) -> str:
            run = by.get(variant)
            if run is None:
                return "-"
            idle = max(0.0, run["server_cores_without_viewers"])
            text = f"{run['server_cores']:.3f} cores ({idle:.3f} with no viewer)"
            if run.get("loss"):
                text += f", loss {100 * run['loss']:.1f}%"
            return text

        ratio = data.get("other_over_rtcc_cpu", {})
        naive = ratio.get("naive_over_rtcc", {}).get(str(cameras))
        janus = ratio.get("janus_over_rtcc", {}).get(str(cameras))
        met = None if naive is None or janus is None else (
            float(naive) >= 4 and float(janus) >= 2 and not by["rtcc"].get("loss"))
        rows.append([
            f"server CPU, {cameras} cameras x {per_camera} viewers (a wall's shape)",
            ">= 2x less than Janus, >= 4x less than naive, every packet",
            cell("rtcc"), cell("naive"), cell("janus"),
            f"naive {naive if naive is not None else '-'}x, "
            f"Janus {janus if janus is not None else '-'}x",
            verdict(met), f"`{command}`",
        ])
    return rows


def ttff_rows(data: dict[str, Any]) -> list[list[str]]:
    rows = []
    command = data["command"].strip()
    for gop in sorted({r["gop_seconds"] for r in data["runs"]}):
        by = {r["variant"]: r for r in data["runs"] if r["gop_seconds"] == gop}
        if "rtcc" not in by:
            continue

        def cell(variant: str, by: dict[str, Any] = by) -> str:
            run = by.get(variant)
            if run is None:
                return "-"
            return f"p95 {ms(run['p95_ms'])} (p50 {ms(run['p50_ms'])}, max {ms(run['max_ms'])})"

        rows.append([
            f"time to first decoded frame, GOP {gop:g} s", "p95 < 400 ms",
            cell("rtcc"), cell("naive"), cell("janus"), "",
            verdict(by["rtcc"]["p95_ms"] < 400), f"`{command}`",
        ])
    return rows


def latency_rows(data: dict[str, Any]) -> list[list[str]]:
    rows = []
    command = data["command"].strip()
    for viewers in sorted({r["viewers"] for r in data["runs"]}):
        if viewers < 10:
            continue
        by = {r["variant"]: r for r in data["runs"] if r["viewers"] == viewers}
        if "rtcc" not in by or "p95_ms" not in by["rtcc"]:
            continue

        def cell(variant: str, by: dict[str, Any] = by) -> str:
            run = by.get(variant)
            if run is None or "p95_ms" not in run:
                return "-"
            return f"p95 {ms(run['p95_ms'])} (p50 {ms(run['p50_ms'])}, max {ms(run['max_ms'])})"

        target = "p95 < 30 ms at 100 viewers" if viewers == 100 else "(p95 < 30 ms at 100)"
        rows.append([
            f"latency added, capture to viewer, {viewers} viewers", target,
            cell("rtcc"), cell("naive"), cell("janus"), "",
            verdict(by["rtcc"]["p95_ms"] < 30) if viewers == 100 else "",
            f"`{command}`",
        ])
    return rows


def soak_rows(data: dict[str, Any]) -> list[list[str]]:
    command = data["command"].strip()
    growth = data.get("rss_growth_mib_per_minute_second_half")
    minutes = data["minutes"]
    released = data.get("rss_mib_after_release")
    idle = [] if released is None else [[
        "resident memory once every viewer has left, after the periodic hand-back of freed "
        "memory", "near the start",
        f"{released:.0f} MiB (start {data['rss_mib_no_viewers']:.0f}, before the hand-back "
        f"{data['rss_mib_after_all_left']:.0f})", "-", "-", "",
        verdict(released < 1.5 * data["rss_mib_no_viewers"]), f"`{command}`"]]
    return [
        *idle,
        ["memory per viewer", "< 1 MiB", f"{data['memory_per_viewer_mib']:.2f} MiB "
         f"(first viewers {data['memory_per_viewer_mib_first_viewers']:.2f})", "-", "-", "",
         verdict(data["memory_per_viewer_mib"] < 1), f"`{command}`"],
        [f"memory over a {minutes:g}-minute soak, {data['viewers']} viewers, "
         f"{data['viewers_joined_in_total']} joins", "flat",
         f"RSS {data['rss_mib_with_viewers_start']:.0f} -> {data['rss_mib_with_viewers_end']:.0f}"
         f" MiB; second half {growth if growth is not None else '-'} MiB/min", "-", "-", "",
         verdict(growth is not None and growth < 0.5), f"`{command}`"],
        ["asyncio tasks once every viewer has left", "back to the start",
         f"{data['tasks_after_all_left']} (start {data['tasks_no_viewers']}, during "
         f"{data['tasks_during_churn_min_max']})", "-", "-", "",
         verdict(data["tasks_after_all_left"] <= data["tasks_no_viewers"]), f"`{command}`"],
    ]


def ingest_rows(data: dict[str, Any]) -> list[list[str]]:
    rows = []
    target = data.get("target_cameras_per_core", 300)
    for cameras, run in sorted(data.get("runs", {}).items(), key=lambda item: int(item[0])):
        per_core = run.get("cameras_per_core", {})
        native = per_core.get("native")
        others = ", ".join(f"{name}: {value}" for name, value in per_core.items()
                           if name != "native")
        rows.append([f"ingest cameras per core at {cameras} cameras, whole process ("
                     + data.get("stream", "") + ")", f">= {target}",
                     f"{native} (native RTSP client)" if native else "-", "-", "-", others,
                     verdict(None if native is None else native >= target),
                     "`python -m benchmarks ingest_demux`"])
    return rows


def pin_rows(data: dict[str, Any]) -> list[list[str]]:
    rows = []
    for mode, run in data.get("modes", {}).items():
        figure = run["pin_to_4_decoding_tiles"]
        target = run.get("target_ms")
        tiles, _, warmth = mode.partition(":")
        path = "standby wall links" if tiles == "links" else "one WHEP connection per tile"
        rows.append([f"pin to 4 decoding tiles in Chromium, {warmth}, {path}",
                     f"p95 < {target:g} ms" if target and tiles == "links" else "(the path before)",
                     f"p95 {figure['p95_ms']:.0f} ms (p50 {figure['p50_ms']:.0f}, "
                     f"{run['runs']} runs)", "-", "-", "",
                     verdict(figure["p95_ms"] < target) if target and tiles == "links" else "",
                     "`python -m benchmarks console_pin_to_wall --runs 10`"])
    return rows


def catalog_rows(data: dict[str, Any]) -> list[list[str]]:
    rows = []
    cameras = data.get("cameras", 0)
    targets = data.get("targets", {})
    for engine in ("sqlite", "postgis", "redis"):
        result = data.get(engine)
        if not isinstance(result, dict) or "under_load" not in result:
            continue
        load = data.get("load", {})
        offered = int(load.get("clients", 0) * load.get("per_client_per_s", 0))
        for query, key in (("nearest 20", "nearest_20"), ("radius 500 m", "radius_500m")):
            figure = result["under_load"].get(key)
            if figure is None:
                continue
            limit = targets.get(f"{key}_p99_ms", 5)
            rows.append([f"catalog {engine}, {cameras:,} cameras, {query}, {offered} queries/s",
                         f"p99 < {limit} ms", f"p99 {figure['p99_ms']:.1f} ms (p50 "
                         f"{figure['p50_ms']:.1f}; failed {figure.get('failed', 0)})",
                         "-", "-", "", verdict(figure["p99_ms"] < limit and
                                               not figure.get("failed")),
                         "`python -m benchmarks catalog_bench`"])
        bulk = result.get("bulk_load", {})
        if bulk:
            goal = targets.get("bulk_import_per_s", 50000)
            rows.append([f"catalog {engine}, bulk import", f">= {goal:,} cameras/s",
                         f"{bulk['store_write_per_s']:,} cameras/s", "-", "-", "",
                         verdict(bulk["store_write_per_s"] >= goal),
                         "`python -m benchmarks catalog_bench`"])
    return rows


def table(prefix: str) -> str:
    header = ["figure", "target", "this relay", "naive aiortc", "Janus", "ratios",
              "verdict", "command"]
    rows: list[list[str]] = []
    for name, build in (("relay_fanout", fanout_rows), ("relay_before_after", before_after_rows),
                        ("relay_cameras", cameras_rows),
                        ("relay_ttff", ttff_rows), ("relay_latency", latency_rows),
                        ("relay_soak", soak_rows), ("relay_soak_30min", soak_rows),
                        ("relay_soak_60min", soak_rows), ("ingest_demux", ingest_rows),
                        ("console_pin_to_wall_links", pin_rows),
                        ("catalog_bench", catalog_rows)):
        data = load(prefix, name)
        if data is not None:
            rows.extend(build(data))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n\nCPU in millicores (m = 0.001 of a core): utime + stime of the "\
        "server process, all threads.\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks report", description=__doc__)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--prefix", default="")
    args = parser.parse_args(argv)
    text = table(args.prefix)
    print(text)
    if args.write:
        document = RESULTS_MD.read_text() if RESULTS_MD.exists() else f"{BEGIN}\n{END}\n"
        if BEGIN not in document or END not in document:
            document += f"\n{BEGIN}\n{END}\n"
        head, rest = document.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        RESULTS_MD.write_text(f"{head}{BEGIN}\n{text}{END}{tail}")


if __name__ == "__main__":
    main()
