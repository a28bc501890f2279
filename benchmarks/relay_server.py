"""A relay server process for the benchmarks: this project's relay, or a naive aiortc one.

``python -m benchmarks.relay_server --variant rtcc|naive --clip CLIP.ts [--cameras N]
[--stamp]`` serves WHEP at ``/whep/cam1`` ... ``/whep/camN`` on a free port, prints
``READY <port>`` and runs until its stdin closes. ``GET /bench/stats`` answers the process's
resident memory, its asyncio task count (HTTP keep-alive connections counted apart), threads,
open file descriptors, event-loop lag (last and worst over 10 s), live cameras and its viewer
count (the soak benchmark samples it). ``--on-demand`` starts a camera with its first viewer and
stops it ``--close-after`` seconds after its last one (cameras come and go with the viewers).

* ``rtcc``: the project's ``relay`` over a ``StreamHub`` whose cameras replay the clip in real
  time (``ReplaySource``, preloaded: the camera is live before the first viewer).
* ``naive``: the reference from FIELD_NOTES.md: ``MediaPlayer(clip, decode=False)`` per camera
  -> ``MediaRelay().subscribe(buffered=False)`` -> one ``RTCPeerConnection`` per viewer, with
  H.264 preferred before the offer is applied (otherwise aiortc would answer VP8). With
  ``--stamp`` the player is replaced by a track that replays the same access units in real time
  with a capture-time SEI in each (``MediaPlayer`` cannot stamp frames).

With ``--stamp`` every frame carries the time it left the camera (``benchmarks.stamp``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import fractions
import os
import random
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import av
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer, MediaRelay
from aiortc.mediastreams import MediaStreamTrack

import relay
from benchmarks.relay_media import ReplaySource, read_units
from benchmarks.stamp import insert_before_first_slice, stamp_nal
from rtcc import heap
from rtcc.access import ViewGrant
from rtcc.appkeys import HUB, MEDIA_ACCESS
from rtcc.hub import StreamHub, StreamSettings
from rtcc.looplag import LoopLag
from rtcc.media import VIDEO_CLOCK_RATE
from rtcc.policy import public
from rtcc.principal import Principal


class AllowAll:
    async def open_view(self, request: web.Request, camera_id: str, profile: str) -> ViewGrant:
        return ViewGrant("bench", camera_id, profile, "bench", "analyst", "benchmark", "",
                         request.remote or "", time.time())

    async def open_view_as(self, principal: Principal, camera_id: str, profile: str, *,
                           purpose: str, incident: str, source: str  # noqa: ARG002 -- the MediaAccess protocol
                           ) -> ViewGrant:
        return ViewGrant("bench", camera_id, profile, principal.username, str(principal.role),
                         "benchmark", "", source, time.time())

    async def close_view(self, grant: ViewGrant, reason: str) -> None:  # noqa: ARG002 -- the MediaAccess protocol
        return None


def resident_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _task_kind(task: asyncio.Task[object]) -> str:
    """``relay:<camera>/<profile>:<session>:pump`` -> ``relay:pump``; unnamed tasks by the
    function they run."""
    name = task.get_name()
    if name.startswith("Task-"):
        return getattr(task.get_coro(), "__qualname__", "task")
    parts = name.split(":")
    return f"{parts[0]}:{parts[-1]}"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def add_stats_route(app: web.Application, viewers: object,
                    live_cameras: Callable[[], int] | None = None) -> None:
    lag = LoopLag(interval=0.1, window=10.0)

    async def sampler(app: web.Application) -> AsyncIterator[None]:  # noqa: ARG001 -- aiohttp cleanup context
        task = asyncio.get_running_loop().create_task(lag.run(), name="bench:loop-lag")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(sampler)

    @public()
    async def stats(request: web.Request) -> web.Response:  # noqa: ARG001 -- aiohttp handler
        count = viewers() if callable(viewers) else 0
        # HTTP keep-alive connections (aiohttp's RequestHandler tasks) belong to the clients'
        # connection pools, not to the viewers: they are counted apart
        tasks = [t for t in asyncio.all_tasks()
                 if t.get_coro().__qualname__ != "RequestHandler.start"]  # type: ignore[union-attr]
        kinds = collections.Counter(_task_kind(t) for t in tasks)
        return web.json_response({"rss": resident_bytes(), "tasks": len(tasks),
                                  "http_connections": len(asyncio.all_tasks()) - len(tasks),
                                  "task_kinds": dict(kinds), "viewers": count,
                                  "threads": threading.active_count(), "fds": open_fds(),
                                  "loop_lag": lag.last, "loop_lag_max": lag.max_recent(),
                                  "live_cameras": live_cameras() if live_cameras else None,
                                  "time": time.time()})

    @public()
    async def release(request: web.Request) -> web.Response:  # noqa: ARG001 -- aiohttp handler
        # What `rtcc serve` does every few minutes: freed memory back to the system.
        before = resident_bytes()
        await asyncio.to_thread(heap.release_free_memory)
        return web.json_response({"rss_before": before, "rss_after": resident_bytes()})

    app.router.add_get("/bench/stats", stats)
    app.router.add_post("/bench/release", release)


def rtcc_app(args: argparse.Namespace) -> web.Application:
    app = web.Application()
    hub = StreamHub()
    units = read_units(Path(args.clip))
    rng = random.Random(1)
    for n in range(1, args.cameras + 1):
        phase = rng.random() / args.fps if args.cameras > 1 else 0.0

        def factory(phase: float = phase) -> ReplaySource:
            return ReplaySource(units, args.fps, args.width, args.height, stamp=args.stamp,
                                phase=phase)

        hub.register(f"cam{n}", "main", factory,
                     StreamSettings(preload=not args.on_demand,
                                    close_after=args.close_after if args.on_demand else 60))
    app[HUB] = hub
    app[MEDIA_ACCESS] = AllowAll()
    registry = relay.add_routes(app)
    add_stats_route(app, lambda: len(registry),
                    lambda: sum(1 for s in hub.streams() if str(s.state) == "live"))

    async def lifecycle(app: web.Application) -> object:  # noqa: ARG001 -- aiohttp cleanup context
        await hub.start_preloaded()
        yield
        await hub.aclose()

    app.cleanup_ctx.append(lifecycle)  # type: ignore[arg-type]
    return app


class StampedReplayTrack(MediaStreamTrack):
    """The clip's access units as ``av.Packet`` in real time, each with a capture-time SEI."""

    kind = "video"

    def __init__(self, units: list[tuple[bytes, bool]], fps: int) -> None:
        super().__init__()
        self._units = units
        self._fps = fps
        self._index = 0
        self._start = 0.0

    async def recv(self) -> av.Packet[Any]:
        if not self._start:
            self._start = time.monotonic()
        due = self._start + self._index / self._fps
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        data, key = self._units[self._index % len(self._units)]
        packet = av.Packet(insert_before_first_slice(data, stamp_nal(time.time())))
        packet.pts = self._index * (VIDEO_CLOCK_RATE // self._fps)
        packet.time_base = fractions.Fraction(1, VIDEO_CLOCK_RATE)
        packet.is_keyframe = key
        self._index += 1
        return packet


def naive_app(args: argparse.Namespace) -> web.Application:
    app = web.Application()
    pcs: dict[str, RTCPeerConnection] = {}
    clip = Path(args.clip)
    units = read_units(clip) if args.stamp else []
    players: dict[str, MediaPlayer] = {}
    tracks: dict[str, MediaStreamTrack] = {}
    for n in range(1, args.cameras + 1):
        if args.stamp:
            tracks[f"cam{n}"] = StampedReplayTrack(units, args.fps)
        else:
            player = MediaPlayer(str(clip), decode=False, loop=True)
            assert player.video is not None
            players[f"cam{n}"] = player
            tracks[f"cam{n}"] = player.video
    media_relay = MediaRelay()
    h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType.lower() in ("video/h264", "video/rtx")
            and c.parameters.get("profile-level-id", "42e01f") == "42e01f"]
    sessions = 0

    @public()
    async def post(request: web.Request) -> web.Response:
        nonlocal sessions
        source = tracks.get(request.match_info["camera"])
        if source is None:
            raise web.HTTPNotFound(text="no such camera")
        offer = await request.text()
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        track = media_relay.subscribe(source, buffered=False)
        transceiver = pc.addTransceiver(track, direction="sendonly")
        transceiver.setCodecPreferences(h264)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        sessions += 1
        session = f"s{sessions}"
        pcs[session] = pc
        return web.Response(status=201, text=pc.localDescription.sdp,
                            content_type="application/sdp",
                            headers={"Location": f"/whep/{request.match_info['camera']}/{session}"})

    @public()
    async def delete(request: web.Request) -> web.Response:
        pc = pcs.pop(request.match_info["session"], None)
        if pc is not None:
            await pc.close()
        return web.Response(text="ok")

    async def shutdown(app: web.Application) -> None:  # noqa: ARG001 -- aiohttp on_shutdown signal
        await asyncio.gather(*(pc.close() for pc in pcs.values()))
        for player in players.values():
            if player.video is not None:
                player.video.stop()  # ends the player's demux thread before the loop closes

    app.router.add_post("/whep/{camera}", post)
    app.router.add_delete("/whep/{camera}/{session}", delete)
    app.on_shutdown.append(shutdown)
    add_stats_route(app, lambda: len(pcs))
    return app


async def serve(args: argparse.Namespace) -> None:
    app = rtcc_app(args) if args.variant == "rtcc" else naive_app(args)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    release: asyncio.Task[None] | None = None
    if args.variant == "rtcc":  # as `rtcc serve` does once it listens
        heap.settle_after_start()
        release = asyncio.get_running_loop().create_task(heap.release_periodically(),
                                                         name="bench:heap-release")
    print(f"READY {runner.addresses[0][1]}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    if release is not None:
        release.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await release
    await runner.cleanup()


__benchmark__ = False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", choices=("rtcc", "naive"), required=True)
    parser.add_argument("--clip", required=True)
    parser.add_argument("--cameras", type=int, default=1)
    parser.add_argument("--stamp", action="store_true")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--on-demand", action="store_true")
    parser.add_argument("--close-after", type=float, default=2.0)
    asyncio.run(serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
