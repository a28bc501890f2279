"""Where the relay's CPU goes: py-spy (Python) and, where installed, perf (C and kernel).

``python -m benchmarks relay_profile [--viewers 100] [--cameras 1] [--seconds 20]`` runs this
relay with N viewers of one 720p30 2 Mbit/s camera (or C cameras sharing the viewers), then:

* ``py-spy record --gil`` on the server process: samples of Python stacks while the process
  holds the GIL, grouped into the relay's parts (frame sending, the shared live loop,
  packetization, RTCP, ICE/STUN, the benchmark's camera replay, the event loop);
* ``perf record`` (Linux ``perf``, when present): every CPU sample by shared object (the Python
  interpreter, libsrtp, the kernel) and the kernel's share spent in ``sendmsg``, most of which
  is, on loopback, the viewers' receive path charged to the sender.

Prints JSON and writes ``results/relay_profile.json`` (and a py-spy flame graph SVG next to it
with ``--flamegraph``). py-spy comes with the ``bench`` extra; perf is optional.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.relay_bench import (
    CLIP_DIR,
    RESULTS_DIR,
    Peer,
    ViewerPool,
    machine,
    process_times,
    save,
)
from benchmarks.relay_media import ClipSpec, make_clip

PARTS = (
    ("send: packets of a frame to one viewer (headers, SRTP, sendmsg)", ("send_now",
                                                                          "_send_checked")),
    ("shared live loop and per-viewer frame bookkeeping", ("send_queued", "LiveFanout")),
    ("catch-up loop of joining viewers", ("_send_frames",)),
    ("packetization (once per frame)", ("StreamPackets.get", "FrameLayout")),
    ("RTCP received (receiver reports, NACK, PLI)", ("_handle_rtcp", "_recv_next")),
    ("RTCP sent (sender reports)", ("_run_rtcp",)),
    ("ICE/STUN consent checks (aioice)", ("aioice/",)),
    ("camera replay and stream hub (benchmark source)", ("ReplaySource", "push_frame")),
    ("HTTP and signalling", ("aiohttp/", "whep_", "negotiat")),
)


def classify(stack: list[str]) -> str:
    for name, markers in PARTS:
        if any(marker in frame for frame in stack for marker in markers):
            return name
    return "event loop and other"


def pyspy(pid: int, seconds: float, flamegraph: Path | None) -> dict[str, Any]:
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(binary).exists():
        return {"skipped": "py-spy is not installed (pip install -e '.[bench]')"}
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.txt"
        subprocess.run([binary, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                        "--rate", "200", "--gil", "--nonblocking", "--format", "raw",
                        "--output", str(raw)], check=True, capture_output=True, timeout=600)
        parts: collections.Counter[str] = collections.Counter()
        leaves: collections.Counter[str] = collections.Counter()
        total = 0
        for line in raw.read_text().splitlines():
            stack_text, _, count = line.rpartition(" ")
            if not stack_text:
                continue
            stack = stack_text.split(";")
            if "select (selectors" in stack[-1]:
                continue
            total += int(count)
            parts[classify(stack)] += int(count)
            if any("relay/" in frame for frame in stack):
                leaves[next(f for f in reversed(stack) if "relay/" in f)] += int(count)
        if flamegraph is not None:
            subprocess.run([binary, "record", "--pid", str(pid), "--duration", "10", "--rate",
                            "200", "--gil", "--nonblocking", "--output", str(flamegraph)],
                           check=True, capture_output=True, timeout=600)
    return {
        "samples": total,
        "parts_percent": {k: round(100 * v / total, 1) for k, v in parts.most_common()},
        "relay_lines_percent": {k: round(100 * v / total, 1)
                                for k, v in leaves.most_common(15)},
    }


def perf(pid: int, seconds: float) -> dict[str, Any]:
    if shutil.which("perf") is None:
        return {"skipped": "Linux perf is not installed"}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "perf.data"
        recorded = subprocess.run(["perf", "record", "-F", "997", "-e", "cpu-clock", "-g",
                                   "-p", str(pid), "-o", str(data), "--", "sleep",
                                   str(seconds)], capture_output=True, text=True,
                                  timeout=seconds + 120)
        if recorded.returncode != 0:
            return {"skipped": f"perf record failed: {recorded.stderr.strip()[-200:]}"}

        def report(*options: str) -> list[tuple[float, str]]:
            text = subprocess.run(["perf", "report", "-i", str(data), "--stdio", *options],
                                  capture_output=True, text=True, timeout=300).stdout
            rows = []
            for line in text.splitlines():
                fields = line.split()
                if fields and fields[0].endswith("%") and not line.startswith("#"):
                    rest = fields[1:]
                    while rest and rest[0].endswith("%"):
                        rest = rest[1:]
                    rows.append((float(fields[0].rstrip("%")), " ".join(rest)))
            return rows

        objects = report("--no-children", "--sort", "dso", "-g", "none")
        symbols = report("--children", "--sort", "sym", "-g", "none")
    kernel = {name: share for share, name in symbols
              if name in ("[k] __sys_sendmsg", "[k] __sys_sendto", "[k] net_rx_action",
                          "[k] do_epoll_wait", "[k] schedule")}
    return {"shared_objects_percent": {name: share for share, name in objects[:8]},
            "kernel_paths_percent_inclusive": kernel}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks relay_profile",
                                     description=__doc__)
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--cameras", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--per-process", type=int, default=50)
    parser.add_argument("--flamegraph", action="store_true")
    parser.add_argument("--name", default="relay_profile", help="results file name")
    args = parser.parse_args(argv)
    clip = make_clip(CLIP_DIR, ClipSpec(gop_seconds=1.0))
    started = machine()
    with Peer("rtcc", clip, cameras=args.cameras) as peer, \
            ViewerPool(peer, args.viewers, args.per_process):
        time.sleep(4)
        user0, sys0 = process_times(peer.pid)
        t0 = time.monotonic()
        flame = RESULTS_DIR / f"{args.name}.svg" if args.flamegraph else None
        python = pyspy(peer.pid, args.seconds, flame)
        native = perf(peer.pid, min(args.seconds, 10))
        user1, sys1 = process_times(peer.pid)
        elapsed = time.monotonic() - t0
    output = {
        "benchmark": "relay_profile",
        "command": "python -m benchmarks relay_profile " + " ".join(argv or []),
        "viewers": args.viewers,
        "cameras": args.cameras,
        "server_user_cores": round((user1 - user0) / elapsed, 4),
        "server_system_cores": round((sys1 - sys0) / elapsed, 4),
        "pyspy_gil": python,
        "perf": native,
        "machine_at_start": started,
        "machine_at_end": machine(),
    }
    save(args.name, output)
    print(json.dumps(output, indent=2))


if __name__ == "__main__":
    main()
