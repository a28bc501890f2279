"""Camera killed and back: how long until the viewers that waited decode again.

``python -m benchmarks reconnect [--cycles 5] [--viewers 3] [--down 3] [--gop 1]`` starts the
camera simulator (one 640x360 15 fps camera, a keyframe every ``gop`` seconds), ``rtcc serve``
in its own process with that camera, and ``viewers`` aiortc viewers (decoding) in this process.
Each cycle SIGKILLs the camera simulator, waits ``down`` seconds, starts it again on the same port
and times, for every viewer, the first frame decoded after the camera was back (the simulator
listening again). The viewers never post a new offer: they stay attached through the outage.

Prints JSON: p50/p95/max over every viewer of every cycle (seconds from the camera back to a
decoded frame), per cycle the slowest viewer, and the target (< 3 s). Writes
``results/reconnect.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from benchmarks.relay_bench import machine, percentile, save
from camsim.runner import Camsim
from rtcc.config import CamsimCameraConfig, CamsimConfig

BOOTSTRAP = "bench-bootstrap-token-5d1f0e2a7c"
PASSWORD = "benchmark pass phrase 7"
TARGET_SECONDS = 3.0
ROOT = Path(__file__).resolve().parent.parent


class Viewer:
    """A WHEP viewer that decodes every frame and keeps the time of the last one."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.frames = 0
        self.last_frame = 0.0
        self._reader: asyncio.Task[None] | None = None

    async def connect(self, http: aiohttp.ClientSession, url: str,
                      headers: dict[str, str]) -> None:
        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._reader = asyncio.get_running_loop().create_task(self._read(track),
                                                                  name="bench:viewer")

        self.pc.addTransceiver("video", direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with http.post(url, data=self.pc.localDescription.sdp,
                             params={"purpose": "reconnect benchmark"},
                             headers={**headers, "Content-Type": "application/sdp"}) as response:
            answer = await response.text()
            if response.status != 201:
                raise RuntimeError(f"the server refused the view: {response.status} {answer}")
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.frames += 1
                self.last_frame = time.monotonic()

    async def close(self) -> None:
        await self.pc.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


def write_config(folder: Path, camera_url: str) -> Path:
    config = folder / "server.yaml"
    config.write_text(
        f"data_dir: {folder / 'data'}\n"
        "security:\n  allow_private_camera_hosts: [127.0.0.0/8]\n"
        "evidence:\n  min_free_mb: 0\n"
        "cameras:\n"
        "  - id: cam1\n    name: Reconnect camera\n    lat: 40.0\n    lon: -75.0\n"
        "    sharing: live_always\n"
        f"    profiles:\n      main:\n        url: {camera_url}\n")
    return config


def start_server(config: Path) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "RTCC_BOOTSTRAP_TOKEN": BOOTSTRAP, "PYTHONPATH": str(ROOT)}
    env.pop("RTCC_SECRET_KEY", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--config", str(config), "--port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("rtcc serve exited before listening")
        if "listening on" in line:
            return process, line.split("listening on", 1)[1].split()[0].rstrip("/")
    raise RuntimeError("rtcc serve did not listen within 60 s")


async def analyst_headers(http: aiohttp.ClientSession, base: str) -> dict[str, str]:
    admin = {"Authorization": f"Bearer {BOOTSTRAP}"}
    async with http.post(f"{base}/api/users", headers=admin, json={
            "username": "bench-analyst", "role": "analyst", "password": PASSWORD}) as response:
        user = await response.json()
        if response.status != 201:
            raise RuntimeError(f"cannot create the analyst: {user}")
    async with http.post(f"{base}/api/users/{user['user']['id']}/tokens", headers=admin,
                         json={"name": "bench"}) as response:
        token = await response.json()
        if response.status != 201:
            raise RuntimeError(f"cannot issue the analyst's token: {token}")
    return {"Authorization": f"Bearer {token['token']}"}


async def wait_for(viewers: list[Viewer], after: float, timeout: float) -> list[float | None]:
    """Seconds from ``after`` to each viewer's first frame decoded after it (None: none came)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(v.last_frame <= after for v in viewers):
        await asyncio.sleep(0.01)
    return [round(v.last_frame - after, 3) if v.last_frame > after else None for v in viewers]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    camera = CamsimCameraConfig(name="Reconnect camera", path="cam", width=640, height=360,
                                fps=15, bitrate_kbps=600, gop_seconds=args.gop, profile="high")
    sim = Camsim(CamsimConfig(cameras=[camera]), port=0)
    await sim.start()
    folder = Path(tempfile.mkdtemp(prefix="rtcc-reconnect-"))
    server, base = start_server(write_config(folder, sim.url("cam")))
    viewers: list[Viewer] = []
    cycles: list[dict[str, Any]] = []
    try:
        async with aiohttp.ClientSession() as http:
            headers = await analyst_headers(http, base)
            for _ in range(args.viewers):
                viewer = Viewer()
                viewers.append(viewer)
                await viewer.connect(http, f"{base}/whep/cam1", headers)
            first = await wait_for(viewers, 0.0, 30)
            if None in first:
                raise RuntimeError("not every viewer decoded a first frame")
            for _ in range(args.cycles):
                await asyncio.sleep(args.settle)
                pid = sim.pid
                assert pid is not None
                killed_at = time.monotonic()
                os.kill(pid, signal.SIGKILL)
                await sim.stop()  # reaps it
                await asyncio.sleep(args.down)
                stale = [v.last_frame for v in viewers]
                await sim.start()
                back_at = time.monotonic()
                waits = await wait_for(viewers, back_at, args.timeout)
                cycles.append({
                    "viewers_decoding_1s_into_the_outage": sum(
                        1 for v, last in zip(viewers, stale, strict=True)
                        if last > killed_at + 1.0),
                    "seconds_camera_down": round(back_at - killed_at, 2),
                    "seconds_to_decode_per_viewer": waits})
    finally:
        for viewer in viewers:
            await viewer.close()
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        await sim.stop()
    decoded: list[float] = [w for c in cycles for w in c["seconds_to_decode_per_viewer"]
                            if w is not None]
    missed = sum(1 for c in cycles for w in c["seconds_to_decode_per_viewer"] if w is None)
    return {
        "benchmark": "reconnect",
        "cycles": args.cycles, "viewers": args.viewers, "down_seconds": args.down,
        "gop_seconds": args.gop,
        "seconds_to_decode_p50": round(percentile(decoded, 0.5), 3) if decoded else None,
        "seconds_to_decode_p95": round(percentile(decoded, 0.95), 3) if decoded else None,
        "seconds_to_decode_max": max(decoded) if decoded else None,
        "viewers_that_never_decoded_again": missed,
        "target_seconds": TARGET_SECONDS,
        "met": bool(decoded) and not missed and percentile(decoded, 0.95) < TARGET_SECONDS,
        "per_cycle": cycles,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks reconnect", description=__doc__)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--viewers", type=int, default=3)
    parser.add_argument("--down", type=float, default=3.0,
                        help="seconds the camera stays away")
    parser.add_argument("--gop", type=float, default=1.0, help="camera keyframe interval (s)")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds of normal video before each kill")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds a viewer may take to decode again before it counts as lost")
    parser.add_argument("--name", default="reconnect", help="results file name")
    args = parser.parse_args(argv)
    if args.cycles < 1 or args.cycles > 100 or args.viewers < 1 or args.viewers > 50:
        parser.error("--cycles must be 1..100 and --viewers 1..50")
    started = machine()
    result = asyncio.run(run(args))
    result["command"] = "python -m benchmarks reconnect " + " ".join(argv or [])
    result["machine_at_start"] = started
    result["machine_at_end"] = machine()
    save(args.name, result)
    print(json.dumps({k: v for k, v in result.items() if k != "per_cycle"}, indent=2))


if __name__ == "__main__":
    main()
