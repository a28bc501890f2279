"""The public open data API under load, beside live viewers of a camera on the same server.

``python -m benchmarks public_api [--viewers 4] [--rate 500] [--seconds 10]`` starts one
server process serving both the relay (a camera replaying a 640x360 30 fps H.264 clip, WHEP)
and the transparency routes (a snapshot built from the CAD simulator's month of history), then
a viewer process (aiortc peer connections counting complete frames where their datagrams
arrive). It counts the viewers' frames over ``--seconds`` without load, then over the same time
while this process sends ``--rate`` requests per second (open loop, round-robin over the JSON,
GeoJSON and CSV files; a request that cannot start on time because ``--concurrency`` are still
open is counted as late, never queued), and prints JSON with both frame rates side by side, their
ratio, and the load actually achieved (answers per second, status codes, latency p50/p95).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter as Tally
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from benchmarks.relay_bench import CLIP_DIR
from benchmarks.relay_media import ClipSpec, make_clip
from benchmarks.relay_viewers import Counter, Viewer
from rtcc.public_data import CadRecord

PATHS = ("/public/api/v1/incidents.json", "/public/api/v1/metrics.json",
         "/public/api/v1/incidents.geojson", "/public/api/v1/program.json",
         "/public/api/v1/incidents.csv")
SPEC = ClipSpec(width=640, height=360, fps=30, bitrate="800k", seconds=40.0)


# -- the server process ------------------------------------------------------------------------


class _History:
    """The CAD simulator's month, as the server's EIDO parser reads it."""

    def __init__(self) -> None:
        from cadsim.history import history_eidos
        from incidents.eido import parse_eido
        from incidents.model import PointLocation

        self.records: list[CadRecord] = []
        for eido in history_eidos(seed=1, days=30, end=datetime.now(UTC)):
            for update in parse_eido(json.dumps(eido)):
                where = update.location
                point = where if isinstance(where, PointLocation) else None
                t = update.times
                self.records.append(CadRecord(
                    update.tracking_id, update.type_code, update.type_text, update.priority,
                    None if point is None else point.lat, None if point is None else point.lon,
                    None, call_received=t.call_received, entered=t.entered,
                    dispatched=t.dispatched, en_route=t.en_route, on_scene=t.on_scene,
                    cleared=t.cleared))

    async def cad_records(self) -> list[CadRecord]:
        return list(self.records)


async def serve(clip: str, data: Path) -> None:
    from benchmarks.relay_server import rtcc_app
    from rtcc.db import Database
    from rtcc.transparency_config import TransparencyConfig
    from transparency import routes as transparency_routes
    from transparency.keys import TRANSPARENCY
    from transparency.service import TransparencyService
    from transparency.store import RecordsStore

    app = rtcc_app(argparse.Namespace(clip=clip, cameras=1, fps=SPEC.fps, width=SPEC.width,
                                      height=SPEC.height, stamp=False))
    transparency_routes.add_routes(app)
    database = Database.embedded(data)
    records = await RecordsStore.open(database)
    service = TransparencyService(TransparencyConfig(window_days=35), records, _History())
    await service.refresh()
    app[TRANSPARENCY] = service
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"READY {runner.addresses[0][1]} {len(service.snapshot.incidents)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()
    await records.aclose()
    database.close()


# -- the viewer process ------------------------------------------------------------------------


class FrameCounter(Counter):
    """Also counts complete frames: RTP packets with the marker bit (the last of a frame)."""

    def __init__(self) -> None:
        super().__init__()
        self.frames = 0

    def rtp(self, data: bytes, arrival: float) -> None:
        super().rtp(data, arrival)
        if data[1] & 0x80:
            self.frames += 1


async def view(url: str, count: int) -> None:
    viewers = [Viewer(1, latency=False) for _ in range(count)]
    async with aiohttp.ClientSession() as http:
        for viewer in viewers:
            viewer.counter = FrameCounter()
            await viewer.connect_whep(http, url)
        print("READY", flush=True)
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            if line.strip() == "mark":
                frames = [v.counter.frames for v in viewers
                          if isinstance(v.counter, FrameCounter)]
                print(json.dumps({"t": time.monotonic(), "frames": frames}), flush=True)
        for viewer in viewers:
            await viewer.leave(http, url, None)


# -- the orchestrator --------------------------------------------------------------------------


async def _line(process: asyncio.subprocess.Process, timeout: float = 60.0) -> str:
    assert process.stdout is not None
    async with asyncio.timeout(timeout):
        return (await process.stdout.readline()).decode().strip()


async def _mark(process: asyncio.subprocess.Process) -> dict[str, Any]:
    assert process.stdin is not None
    process.stdin.write(b"mark\n")
    await process.stdin.drain()
    reply: dict[str, Any] = json.loads(await _line(process))
    return reply


def _fps(first: dict[str, Any], second: dict[str, Any]) -> list[float]:
    seconds = second["t"] - first["t"]
    return [round((b - a) / seconds, 2) for a, b in zip(first["frames"], second["frames"],
                                                       strict=True)]


async def load(base: str, rate: float, seconds: float, concurrency: int) -> dict[str, Any]:
    statuses: Tally[str] = Tally()
    latencies: list[float] = []
    late = 0
    open_requests = 0
    tasks: set[asyncio.Task[None]] = set()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=10)) as http:

        async def one(path: str) -> None:
            nonlocal open_requests
            started = time.perf_counter()
            try:
                async with http.get(base + path) as answer:
                    await answer.read()
                    statuses[str(answer.status)] += 1
                latencies.append(1000 * (time.perf_counter() - started))
            except (aiohttp.ClientError, TimeoutError) as exc:
                statuses[type(exc).__name__] += 1
            finally:
                open_requests -= 1

        loop = asyncio.get_running_loop()
        start = loop.time()
        total = int(rate * seconds)
        for n in range(total):  # bounded: exactly rate * seconds attempts
            due = start + n / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if open_requests >= concurrency:
                late += 1
                continue
            open_requests += 1
            task = loop.create_task(one(PATHS[n % len(PATHS)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=15)
        elapsed = loop.time() - start
    latencies.sort()

    def pct(q: float) -> float | None:
        return round(latencies[int(q * (len(latencies) - 1))], 2) if latencies else None

    answered = sum(v for k, v in statuses.items() if k.isdigit())
    return {"requested_per_s": rate, "attempts": total, "late_not_sent": late,
            "answered_per_s": round(answered / elapsed, 1), "statuses": dict(statuses),
            "latency_ms_p50": pct(0.5), "latency_ms_p95": pct(0.95)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    clip = make_clip(CLIP_DIR, SPEC)
    env = {**os.environ}
    with tempfile.TemporaryDirectory(prefix="public-api-bench-") as data:
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.public_api", "--serve", str(clip), data,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env)
        viewers = None
        try:
            ready = (await _line(server, 120)).split()
            if not ready or ready[0] != "READY":
                raise RuntimeError(f"the server did not start: {ready}")
            base = f"http://127.0.0.1:{ready[1]}"
            viewers = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks.public_api", "--view", base,
                str(args.viewers), stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, env=env)
            if await _line(viewers, 60) != "READY":
                raise RuntimeError("the viewers did not connect")
            await asyncio.sleep(args.warmup)
            a = await _mark(viewers)
            await asyncio.sleep(args.seconds)
            b = await _mark(viewers)
            achieved = await load(base, args.rate, args.seconds, args.concurrency)
            c = await _mark(viewers)
            quiet, loaded = _fps(a, b), _fps(b, c)
            load_seconds = c["t"] - b["t"]
        finally:
            for process in (viewers, server):
                if process is not None and process.stdin is not None:
                    process.stdin.close()
                    try:
                        async with asyncio.timeout(20):
                            await process.wait()
                    except TimeoutError:
                        process.kill()
                        await process.wait()
    mean_quiet = sum(quiet) / len(quiet)
    mean_loaded = sum(loaded) / len(loaded)
    return {
        "benchmark": "public_api",
        "clip": {"width": SPEC.width, "height": SPEC.height, "fps": SPEC.fps,
                 "bitrate": SPEC.bitrate},
        "published_incidents": int(ready[2]),
        "viewers": args.viewers, "seconds_per_window": args.seconds,
        "viewer_fps_without_load": quiet, "viewer_fps_with_load": loaded,
        "mean_fps_without_load": round(mean_quiet, 2),
        "mean_fps_with_load": round(mean_loaded, 2),
        "fps_ratio_with_to_without": round(mean_loaded / mean_quiet, 3) if mean_quiet else None,
        "load_window_s": round(load_seconds, 2),
        "load": achieved, "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"]:
        asyncio.run(serve(argv[1], Path(argv[2])))
        return
    if argv[:1] == ["--view"]:
        asyncio.run(view(argv[1], int(argv[2])))
        return
    parser = argparse.ArgumentParser(prog="public_api", description=__doc__)
    parser.add_argument("--viewers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=64)
    print(json.dumps(asyncio.run(run(parser.parse_args(argv))), indent=2))


if __name__ == "__main__":
    main()
