"""A relay server process for the benchmarks: this project's relay, or a naive aiortc one.

``python -m benchmarks.relay_server --variant rtcc|naive --clip CLIP.ts`` serves WHEP at
``/whep/cam1`` on a free port, prints ``READY <port>`` and runs until its stdin closes.

The naive variant is the reference from FIELD_NOTES.md: ``MediaPlayer(clip, decode=False)`` ->
``MediaRelay().subscribe(buffered=False)`` -> one ``RTCPeerConnection`` per viewer, with H.264
preferred before the offer is applied (otherwise aiortc would answer VP8).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer, MediaRelay

import relay
from benchmarks.relay_media import ReplaySource, read_units
from rtcc.access import ViewGrant
from rtcc.appkeys import HUB, MEDIA_ACCESS
from rtcc.hub import StreamHub, StreamSettings
from rtcc.policy import public


class AllowAll:
    async def open_view(self, request: web.Request, camera_id: str, profile: str) -> ViewGrant:
        return ViewGrant("bench", camera_id, profile, "bench", "analyst", "benchmark", "",
                         request.remote or "", time.time())

    async def close_view(self, grant: ViewGrant, reason: str) -> None:
        return None


def rtcc_app(clip: Path, fps: int, width: int, height: int) -> web.Application:
    app = web.Application()
    hub = StreamHub()
    units = read_units(clip)
    hub.register("cam1", "main", lambda: ReplaySource(units, fps, width, height),
                 StreamSettings(preload=True, close_after=60))
    app[HUB] = hub
    app[MEDIA_ACCESS] = AllowAll()
    relay.add_routes(app)

    async def lifecycle(app: web.Application) -> object:
        await hub.start_preloaded()
        yield
        await hub.aclose()

    app.cleanup_ctx.append(lifecycle)  # type: ignore[arg-type]
    return app


def naive_app(clip: Path) -> web.Application:
    app = web.Application()
    pcs: dict[str, RTCPeerConnection] = {}
    player = MediaPlayer(str(clip), decode=False, loop=True)
    media_relay = MediaRelay()
    h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType.lower() in ("video/h264", "video/rtx")
            and c.parameters.get("profile-level-id", "42e01f") == "42e01f"]

    @public()
    async def post(request: web.Request) -> web.Response:
        offer = await request.text()
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        assert player.video is not None
        track = media_relay.subscribe(player.video, buffered=False)
        transceiver = pc.addTransceiver(track, direction="sendonly")
        transceiver.setCodecPreferences(h264)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        session = f"s{len(pcs)}"
        pcs[session] = pc
        return web.Response(status=201, text=pc.localDescription.sdp,
                            content_type="application/sdp",
                            headers={"Location": f"/whep/cam1/{session}"})

    @public()
    async def delete(request: web.Request) -> web.Response:
        pc = pcs.pop(request.match_info["session"], None)
        if pc is not None:
            await pc.close()
        return web.Response(text="ok")

    async def shutdown(app: web.Application) -> None:
        await asyncio.gather(*(pc.close() for pc in pcs.values()))
        if player.video is not None:
            player.video.stop()  # ends the player's demux thread before the loop closes

    app.router.add_post("/whep/cam1", post)
    app.router.add_delete("/whep/cam1/{session}", delete)
    app.on_shutdown.append(shutdown)
    return app


async def serve(args: argparse.Namespace) -> None:
    clip = Path(args.clip)
    app = (rtcc_app(clip, args.fps, args.width, args.height) if args.variant == "rtcc"
           else naive_app(clip))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"READY {runner.addresses[0][1]}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


__benchmark__ = False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", choices=("rtcc", "naive"), required=True)
    parser.add_argument("--clip", required=True)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    asyncio.run(serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
