"""Server CPU per viewer: this project's relay and a naive aiortc relay, side by side in one run.

``python -m benchmarks relay_fanout [--viewers 1,10,30] [--seconds 8]`` relays a 720p30 2 Mbit/s
H.264 clip (about 240 RTP packets/s per viewer) to N aiortc viewers in a separate process that
count packets without decoding, and reads the server process's CPU time (utime + stime) over a
measurement window. Prints JSON: cores used, CPU per viewer, microseconds per delivered packet,
and the naive/rtcc ratio for each viewer count.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from benchmarks.relay_media import ClipSpec, make_clip

CLIP_DIR = Path(os.environ.get("RTCC_BENCH_DIR", "/tmp/rtcc-bench"))


def process_times(pid: int) -> tuple[float, float]:
    """CPU seconds (user, system) a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def process_cpu(pid: int) -> float:
    return sum(process_times(pid))


def _readline(stream: IO[str], what: str) -> str:
    line = stream.readline()
    if not line:
        raise RuntimeError(f"{what} exited before answering")
    return line


def _json_line(stream: IO[str], event: str) -> dict[str, Any]:
    while True:
        line = _readline(stream, "the viewer process")
        if line.startswith("{"):
            data: dict[str, Any] = json.loads(line)
            if data.get("event") == event:
                return data


def start_server(variant: str, clip: Path) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.relay_server", "--variant", variant,
         "--clip", str(clip)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert server.stdout is not None
    while True:
        line = _readline(server.stdout, f"the {variant} server")
        if line.startswith("READY "):
            return server, f"http://127.0.0.1:{int(line.split()[1])}"


def stop(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    try:
        process.stdin.close()
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def measure(
    variant: str, clip: Path, viewers: int, warmup: float, seconds: float
) -> dict[str, Any]:
    server, url = start_server(variant, clip)
    try:
        client = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.relay_viewers", "--url", url,
             "--viewers", str(viewers)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert client.stdin is not None
        assert client.stdout is not None
        try:
            _json_line(client.stdout, "connected")
            time.sleep(warmup)
            (user0, sys0), ccpu0, t0 = (process_times(server.pid), process_cpu(client.pid),
                                        time.monotonic())
            client.stdin.write("mark\n")
            client.stdin.flush()
            mark0 = _json_line(client.stdout, "mark")
            time.sleep(seconds)
            (user1, sys1), ccpu1, t1 = (process_times(server.pid), process_cpu(client.pid),
                                        time.monotonic())
            client.stdin.write("mark\n")
            client.stdin.flush()
            mark1 = _json_line(client.stdout, "mark")
        finally:
            stop(client)
    finally:
        stop(server)
    elapsed = t1 - t0
    cpu0, cpu1 = user0 + sys0, user1 + sys1
    packets = [b - a for a, b in zip(mark0["packets"], mark1["packets"], strict=True)]
    octets = sum(b - a for a, b in zip(mark0["bytes"], mark1["bytes"], strict=True))
    cores = (cpu1 - cpu0) / elapsed
    delivered = sum(packets)
    return {
        "variant": variant,
        "viewers": viewers,
        "seconds": round(elapsed, 2),
        "server_cores": round(cores, 4),
        "server_user_cores": round((user1 - user0) / elapsed, 4),
        "server_system_cores": round((sys1 - sys0) / elapsed, 4),
        "server_cores_per_viewer": round(cores / viewers, 5),
        "viewers_per_core": round(viewers / cores, 1) if cores else None,
        "server_us_per_packet": round(1e6 * (cpu1 - cpu0) / delivered, 2) if delivered else None,
        "packets_per_viewer_per_s": round(delivered / viewers / elapsed, 1),
        "min_viewer_packets_per_s": round(min(packets) / elapsed, 1),
        "mbit_per_viewer": round(8 * octets / viewers / elapsed / 1e6, 3),
        "client_cores": round((ccpu1 - ccpu0) / elapsed, 4),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks relay_fanout", description=__doc__)
    parser.add_argument("--viewers", default="1,10,30")
    parser.add_argument("--variants", default="naive,rtcc")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    args = parser.parse_args(argv)
    spec = ClipSpec(gop_seconds=1.0)
    clip = make_clip(CLIP_DIR, spec)
    runs = []
    for viewers in (int(v) for v in args.viewers.split(",")):
        for variant in args.variants.split(","):
            result = measure(variant, clip, viewers, args.warmup, args.seconds)
            print(json.dumps(result), file=sys.stderr, flush=True)
            runs.append(result)
    ratios = {}
    for viewers in {run["viewers"] for run in runs}:
        by = {run["variant"]: run for run in runs if run["viewers"] == viewers}
        if "naive" in by and "rtcc" in by and by["rtcc"]["server_cores"]:
            naive, rtcc = by["naive"]["server_cores"], by["rtcc"]["server_cores"]
            ratios[str(viewers)] = round(naive / rtcc, 2)
    print(json.dumps({
        "benchmark": "relay_fanout",
        "clip": {"width": spec.width, "height": spec.height, "fps": spec.fps,
                 "bitrate": spec.bitrate, "gop_seconds": spec.gop_seconds},
        "cpu_count": os.cpu_count(),
        "runs": runs,
        "naive_over_rtcc_cpu": ratios,
    }, indent=2))


if __name__ == "__main__":
    main()
