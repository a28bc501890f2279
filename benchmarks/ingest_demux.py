"""Server CPU to pull RTSP cameras: the native client and the FFmpeg reader through the stream
hub, beside a bare PyAV loop.

``python -m benchmarks.ingest_demux [--cameras 10,50] [--paths 5] [--width 640 --height 360]
[--fps 30] [--kbps 2000] [--seconds 10]`` starts the GStreamer camera simulator, then for each
camera count measures this process's CPU time (utime + stime, all threads) over a window, for:

* ``native``: ``ingest.rtsp.RtspSource`` with ``rtsp_client: native`` (the asyncio client of
  ``ingest.rtsp_native``, no thread per camera) feeding a ``rtcc.hub.Stream`` with one
  subscriber draining it (depacketization, normalisation, GOP cache and fan-out included);
* ``rtsp_source``: the same with ``rtsp_client: ffmpeg`` (PyAV demux thread and egress guard
  per camera, sharing one ``LoopHandoff``);
* ``pyav_floor``: one thread per camera running ``container.demux()`` and copying each packet
  (what any PyAV-based ingest costs at the least).

The figure is whole-process CPU divided by cameras (``cameras_per_core``), not the marginal
slope. Cameras are spread over ``--paths`` simulator mounts: each mount encodes once for all
its clients, so the simulator's CPU (reported, not counted) stays small while every client
receives a full stream. The load average is recorded: the machine may be shared. Prints JSON
and writes ``benchmarks/results/ingest_demux.json`` (``--output`` to change).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Literal

import av

from camsim.runner import Camsim
from ingest.handoff import LoopHandoff
from ingest.rtsp import RtspSource, RtspTarget
from rtcc.config import CamsimCameraConfig, CamsimConfig, IngestConfig
from rtcc.hub import StreamHub, StreamSettings, Subscription


def _cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def _own_cpu() -> float:
    return time.process_time()  # utime + stime of every thread, at scheduler precision


class _Window:
    """CPU of this process and of the simulator, and media counted, over a time window."""

    def __init__(self, sim_pid: int) -> None:
        self.sim_pid = sim_pid
        self.start_wall = time.monotonic()
        self.start_cpu = _own_cpu()
        self.start_sim = _cpu_of(sim_pid)

    def result(self, cameras: int, frames: int, packets: int, nbytes: int) -> dict[str, Any]:
        wall = time.monotonic() - self.start_wall
        cores = (_own_cpu() - self.start_cpu) / wall
        per_camera = cores / cameras
        return {
            "seconds": round(wall, 2),
            "cores_used": round(cores, 4),
            "cores_per_camera": round(per_camera, 5),
            "cameras_per_core": round(1 / per_camera, 1) if per_camera > 0 else None,
            "fps_per_camera": round(frames / wall / cameras, 2),
            "packets_per_second_per_camera": round(packets / wall / cameras, 1),
            "mbit_per_second_per_camera": round(nbytes * 8 / wall / cameras / 1e6, 3),
            "us_cpu_per_frame": round(cores * 1e6 / (frames / wall), 1) if frames else None,
            "simulator_cores": round((_cpu_of(self.sim_pid) - self.start_sim) / wall, 3),
        }


async def _pyav_floor(urls: list[str], warmup: float, seconds: float, sim_pid: int
                      ) -> dict[str, Any]:
    stop = threading.Event()
    counts = [[0, 0] for _ in urls]

    def pull(index: int, url: str) -> None:
        options = {"rtsp_transport": "tcp", "analyzeduration": "300000"}
        with av.open(url, options=options, timeout=(30, 10)) as container:
            video = container.streams.video[0].index
            for packet in container.demux():
                if stop.is_set():
                    return
                if packet.stream_index == video and packet.size:
                    data = bytes(packet)
                    counts[index][0] += 1
                    counts[index][1] += len(data)

    threads = [threading.Thread(target=pull, args=(i, url), name=f"floor:{i}", daemon=True)
               for i, url in enumerate(urls)]
    for thread in threads:
        thread.start()
    await asyncio.sleep(warmup)
    before = [list(c) for c in counts]
    window = _Window(sim_pid)
    await asyncio.sleep(seconds)
    frames = sum(c[0] - b[0] for c, b in zip(counts, before, strict=True))
    nbytes = sum(c[1] - b[1] for c, b in zip(counts, before, strict=True))
    result = window.result(len(urls), frames, frames, nbytes)
    stop.set()
    for thread in threads:
        await asyncio.to_thread(thread.join, 10)
    return result


async def _drain(sub: Subscription, counter: list[int]) -> None:
    async for frame in sub:
        counter[0] += 1
        counter[1] += len(frame.data)


async def _rtsp_source(urls: list[str], warmup: float, seconds: float, sim_pid: int,
                       client: Literal["native", "ffmpeg"] = "ffmpeg") -> dict[str, Any]:
    # 50 sessions opened at once wait in the simulator's single GLib loop: generous timeouts.
    settings = IngestConfig(rtsp_client=client, open_timeout=30.0)
    counter = [0, 0]
    handoff = LoopHandoff()
    async with StreamHub() as hub:
        streams = []
        for index, url in enumerate(urls):
            def make(url: str = url, index: int = index) -> RtspSource:
                return RtspSource(f"bench{index}/main", RtspTarget(url), settings,
                                  handoff=handoff)

            streams.append(hub.register(f"bench{index}", "main", make,
                                        StreamSettings(start_timeout=60)))
        subs: list[Subscription] = []
        for first in range(0, len(streams), 10):  # the simulator answers one at a time
            subs += await asyncio.gather(*(stream.subscribe("bench")
                                           for stream in streams[first:first + 10]))
        drains = [asyncio.create_task(_drain(sub, counter), name=f"bench:drain:{i}")
                  for i, sub in enumerate(subs)]
        await asyncio.sleep(warmup)

        def packets() -> int:
            total = 0
            for stream in streams:
                source = stream.stats()["source"]
                assert isinstance(source, dict)
                total += int(source.get("packets", 0))
            return total

        frames_before, bytes_before, packets_before = counter[0], counter[1], packets()
        window = _Window(sim_pid)
        await asyncio.sleep(seconds)
        result = window.result(len(urls), counter[0] - frames_before,
                               packets() - packets_before, counter[1] - bytes_before)
        result["subscriber_drops"] = sum(sub.frames_dropped for sub in subs)
        if client == "ffmpeg":
            result["handoff"] = handoff.stats()
        clients: set[str] = set()
        for stream in streams:
            source = stream.stats()["source"]
            assert isinstance(source, dict)
            clients.add(str(source.get("client")))
        result["clients"] = sorted(clients)
        for sub in subs:
            sub.close("benchmark over")
        await asyncio.gather(*drains)
    return result


def _marginal(low: dict[str, Any], high: dict[str, Any], n_low: int, n_high: int
              ) -> dict[str, Any]:
    """CPU each additional camera costs: the slope between two camera counts. Costs that do not
    grow with cameras (the event loop's timer wakeups, which cost ~200 us each on a small VM)
    cancel out."""
    slope = (high["cores_used"] - low["cores_used"]) / (n_high - n_low)
    return {
        "cores_per_additional_camera": round(slope, 5),
        "cameras_per_core": round(1 / slope, 1) if slope > 0 else None,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    counts = sorted({int(n) for n in str(args.cameras).split(",")})
    cameras = [
        CamsimCameraConfig(name=f"Bench {i}", path=f"bench{i}", width=args.width,
                           height=args.height, fps=args.fps, bitrate_kbps=args.kbps,
                           gop_seconds=2.0, profile="high")
        for i in range(min(counts[-1], args.paths))
    ]
    runs: dict[int, dict[str, Any]] = {}
    async with Camsim(CamsimConfig(cameras=cameras), port=0) as sim:
        assert sim.pid is not None
        for count in counts:
            urls = [sim.url(cameras[i % len(cameras)].path) for i in range(count)]
            native = await _rtsp_source(urls, args.warmup, args.seconds, sim.pid, "native")
            native["load_average"] = _load()
            ours = await _rtsp_source(urls, args.warmup, args.seconds, sim.pid, "ffmpeg")
            ours["load_average"] = _load()
            floor = await _pyav_floor(urls, args.warmup, args.seconds, sim.pid)
            floor["load_average"] = _load()
            runs[count] = {
                "native": native,
                "rtsp_source": ours,
                "pyav_floor": floor,
                "cameras_per_core": {
                    "native": native["cameras_per_core"],
                    "rtsp_source (ffmpeg)": ours["cameras_per_core"],
                    "pyav_floor": floor["cameras_per_core"],
                },
            }
    result: dict[str, Any] = {
        "benchmark": "ingest_demux",
        "stream": f"{args.width}x{args.height} {args.fps} fps {args.kbps} kbit/s H.264, "
                  "RTSP over TCP",
        "simulator_mounts": len(cameras),
        "cpu_count": os.cpu_count(),
        "figure": "whole-process CPU (utime+stime, all threads) / cameras",
        "runs": {str(count): data for count, data in runs.items()},
        "target_cameras_per_core": 300,
    }
    if len(counts) > 1:
        low, high = counts[0], counts[-1]
        result["marginal"] = {
            kind: _marginal(runs[low][kind], runs[high][kind], low, high)
            for kind in ("native", "rtsp_source", "pyav_floor")
        }
    return result


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ingest_demux")
    parser.add_argument("--cameras", default="10,50",
                        help="camera count, or several separated by commas (e.g. 4,10) to "
                             "also get the marginal cost per camera")
    parser.add_argument("--paths", type=int, default=5,
                        help="simulator mounts the cameras are spread over")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--kbps", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--output", type=Path,
                        default=Path(__file__).parent / "results" / "ingest_demux.json")
    args = parser.parse_args(argv)
    text = json.dumps(asyncio.run(run(args)), indent=2)
    args.output.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
