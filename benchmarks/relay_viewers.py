"""Viewers that count RTP packets without decoding: the load generator of the relay benchmarks.

``python -m benchmarks.relay_viewers --kind whep|janus --url URL [--viewers N] [--cameras C]
[--latency]`` connects N aiortc peer connections, viewer ``i`` watching camera ``i % C + 1``
(WHEP: ``POST URL/whep/cam{n}``; Janus: the streaming plugin's mountpoint ``n`` through the HTTP
API: create, attach, ``watch``, answer Janus's offer, ``start``), then obeys lines on stdin and
answers each with one JSON line on stdout:

* ``mark``: packets, bytes, packets lost and packets expected (from sequence numbers) per viewer;
* ``latency``: capture-to-arrival delays (ms) of the stamped frames seen since the last call;
* ``join K`` / ``leave K``: K more viewers / the K oldest leave (WHEP DELETE, Janus ``hangup``);
* end of input: every viewer leaves, the process exits.

Against a server that asks viewers to log in, ``RTCC_BENCH_AUTHORIZATION`` is sent as the
``Authorization`` header and ``RTCC_BENCH_WHEP_QUERY`` (``purpose=...``) is added to the POST.

Every viewer is counted where its datagrams arrive (the ICE socket's protocol), before aioice,
DTLS, SRTP and RTP parsing: the client stays cheap enough to host hundreds of viewers, and it
does the same work whichever server it watches. Statistics still feed aiortc's receiver, so
every viewer sends normal receiver reports. With ``--latency`` the first packet of each frame is
decrypted and the capture time it carries (``benchmarks.stamp``) compared with the arrival time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections import deque
from typing import Any

import aiohttp
import pylibsrtp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpreceiver import RTCRtpReceiver, StreamStatistics

from benchmarks.stamp import read_stamp_payload, rtp_payload

SRTP_UNPROTECT_ERRORS = (pylibsrtp.Error, TypeError, ValueError)
"""What ``pylibsrtp.Session.unprotect`` raises on a packet it cannot decrypt."""

HTTP_TIMEOUT = aiohttp.ClientTimeout(total=30)


class Counter(StreamStatistics):
    """Packets of one viewer, from their clear-text RTP headers; also the receiver statistics
    aiortc's receiver reports (fraction lost, cumulative lost, highest sequence number)."""

    def __init__(self) -> None:
        super().__init__(90000)
        self.bytes = 0
        self.last_ts = -1
        self.stamps: list[float] | None = None
        self.srtp: Any = None

    def rtp(self, data: bytes, arrival: float) -> None:
        seq = (data[2] << 8) | data[3]
        self.packets_received += 1
        self.bytes += len(data)
        top = self.max_seq
        if top is None:
            self.base_seq = self.max_seq = seq
        elif seq != top and (seq - top) & 0xFFFF < 0x8000:
            if seq < top:
                self.cycles += 1 << 16
            self.max_seq = seq
        if self.stamps is not None:
            ts = int.from_bytes(data[4:8], "big")
            if ts != self.last_ts:
                self.last_ts = ts
                self._read_stamp(data, arrival)

    def _read_stamp(self, data: bytes, arrival: float) -> None:
        if self.srtp is None:
            return
        try:
            packet = self.srtp.unprotect(data)
        except SRTP_UNPROTECT_ERRORS:  # not decryptable (yet): no sample from this frame
            return
        captured = read_stamp_payload(rtp_payload(packet))
        if captured is not None and self.stamps is not None:
            self.stamps.append(1000 * (arrival - captured))

    @property
    def expected(self) -> int:
        return 0 if self.max_seq is None or self.base_seq is None else self.packets_expected

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.packets_received)


def count_at_socket(receiver: RTCRtpReceiver, counter: Counter) -> None:
    """Count RTP where each of the connection's UDP sockets delivers it; the rest (STUN, DTLS,
    RTCP) goes on to aioice and aiortc as usual."""
    # aiortc offers no hook at the socket: reaching into its and aioice's internals is the point.
    dtls = receiver.transport
    connection = dtls.transport._connection  # noqa: SLF001 -- counting at the socket
    streams: dict[int, Any] = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]  # noqa: SLF001 -- counting at the socket
    wall = time.time

    for protocol in connection._protocols:  # noqa: SLF001 -- counting at the socket
        original = protocol.datagram_received

        def hook(data: bytes, addr: tuple[Any, ...], original: Any = original) -> None:
            if 127 < data[0] < 192 and not 191 < data[1] < 224 and len(data) >= 12:
                if counter.packets_received == 0:
                    streams[int.from_bytes(data[8:12], "big")] = counter
                if counter.stamps is not None and counter.srtp is None:
                    counter.srtp = dtls._rx_srtp  # noqa: SLF001 -- decrypts the stamps
                counter.rtp(data, wall())
            else:
                original(data, addr)

        protocol.datagram_received = hook  # type: ignore[method-assign,assignment]


class Viewer:
    def __init__(self, camera: int, latency: bool) -> None:
        self.camera = camera
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.counter = Counter()
        if latency:
            self.counter.stamps = []
        self.location = ""
        self.handle = 0

    async def connect_whep(self, http: aiohttp.ClientSession, url: str) -> None:
        transceiver = self.pc.addTransceiver("video", direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        headers = {"Content-Type": "application/sdp"}
        # A server that asks viewers to log in and state a purpose (a full ``rtcc serve``).
        authorization = os.environ.get("RTCC_BENCH_AUTHORIZATION", "")
        if authorization:
            headers["Authorization"] = authorization
        query = os.environ.get("RTCC_BENCH_WHEP_QUERY", "")
        async with http.post(f"{url}/whep/cam{self.camera}{'?' + query if query else ''}",
                             data=self.pc.localDescription.sdp, headers=headers,
                             timeout=HTTP_TIMEOUT) as response:
            answer = await response.text()
            if response.status != 201:
                raise RuntimeError(f"WHEP POST failed: {response.status} {answer}")
            self.location = response.headers["Location"]
        count_at_socket(transceiver.receiver, self.counter)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def connect_janus(self, janus: JanusSession) -> None:
        self.handle = await janus.attach()
        offer = await janus.request(self.handle, {"request": "watch", "id": self.camera})
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        receiver = self.pc.getTransceivers()[0].receiver
        count_at_socket(receiver, self.counter)
        await janus.request(self.handle, {"request": "start"},
                            jsep={"type": "answer", "sdp": self.pc.localDescription.sdp})

    async def leave(self, http: aiohttp.ClientSession, url: str,
                    janus: JanusSession | None) -> None:
        try:
            if janus is not None and self.handle:
                await janus.detach(self.handle)
            elif self.location:
                authorization = os.environ.get("RTCC_BENCH_AUTHORIZATION", "")
                headers = {"Authorization": authorization} if authorization else {}
                async with http.delete(f"{url}{self.location}", headers=headers,
                                       timeout=HTTP_TIMEOUT):
                    pass
        finally:
            await self.pc.close()


class JanusSession:
    """One Janus API session (HTTP long poll) holding a plugin handle per viewer."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self._http = http
        self._url = url
        self._session = 0
        self._transactions = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._poller: asyncio.Task[None] | None = None

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self._transactions += 1
        body["transaction"] = f"t{self._transactions}"
        async with self._http.post(f"{self._url}{path}", json=body,
                                   timeout=HTTP_TIMEOUT) as response:
            reply: dict[str, Any] = await response.json(content_type=None)
        if reply.get("janus") == "error":
            raise RuntimeError(f"Janus refused {body.get('janus')}: {reply.get('error')}")
        return reply

    async def start(self) -> None:
        self._session = (await self._post("", {"janus": "create"}))["data"]["id"]
        self._poller = asyncio.get_running_loop().create_task(self._poll(), name="janus:poll")

    async def _poll(self) -> None:
        url = f"{self._url}/{self._session}?maxev=20"
        while True:
            try:
                async with self._http.get(url, timeout=aiohttp.ClientTimeout(total=65)) as r:
                    events = await r.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.5)
                continue
            for event in events if isinstance(events, list) else [events]:
                waiter = self._waiting.get(event.get("sender", 0))
                data = event.get("plugindata", {}).get("data", {})
                if waiter is None or waiter.done():
                    continue
                if "error" in data:
                    waiter.set_exception(RuntimeError(f"Janus: {data['error']}"))
                elif event.get("janus") == "event":
                    waiter.set_result(event.get("jsep") or data)

    async def attach(self) -> int:
        reply = await self._post(f"/{self._session}",
                                 {"janus": "attach", "plugin": "janus.plugin.streaming"})
        handle: int = reply["data"]["id"]
        return handle

    async def request(self, handle: int, body: dict[str, Any],
                      jsep: dict[str, str] | None = None) -> dict[str, Any]:
        """Send a plugin request and wait for the plugin's asynchronous answer."""
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[handle] = waiter
        message: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            message["jsep"] = jsep
        try:
            await self._post(f"/{self._session}/{handle}", message)
            async with asyncio.timeout(30):
                return await waiter
        finally:
            self._waiting.pop(handle, None)

    async def detach(self, handle: int) -> None:
        await self._post(f"/{self._session}/{handle}", {"janus": "detach"})

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, RuntimeError):
            await self._post(f"/{self._session}", {"janus": "destroy"})


def emit(event: dict[str, object]) -> None:
    print(json.dumps(event), flush=True)


class Crowd:
    def __init__(self, args: argparse.Namespace, http: aiohttp.ClientSession,
                 janus: JanusSession | None) -> None:
        self.args = args
        self.http = http
        self.janus = janus
        self.viewers: deque[Viewer] = deque()
        self.joined = 0
        self.failures = 0
        self.departed_packets = 0
        self.departed_lost = 0

    async def join(self, count: int) -> None:
        new = []
        for _ in range(count):
            camera = (self.args.first + self.joined) % self.args.cameras + 1
            self.joined += 1
            new.append(Viewer(camera, self.args.latency))
        for start in range(0, len(new), 5):
            batch = new[start:start + 5]
            results = await asyncio.gather(*(self._connect(v) for v in batch),
                                           return_exceptions=True)
            for viewer, result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    self.failures += 1
                    print(f"viewer failed to connect: {result!r}", file=sys.stderr, flush=True)
                    await viewer.pc.close()
                else:
                    self.viewers.append(viewer)

    async def _connect(self, viewer: Viewer) -> None:
        if self.janus is not None:
            await viewer.connect_janus(self.janus)
        else:
            await viewer.connect_whep(self.http, self.args.url)

    async def leave(self, count: int) -> None:
        leaving = [self.viewers.popleft() for _ in range(min(count, len(self.viewers)))]
        for viewer in leaving:
            self.departed_packets += viewer.counter.packets_received
            self.departed_lost += viewer.counter.lost
        await asyncio.gather(*(v.leave(self.http, self.args.url, self.janus) for v in leaving),
                             return_exceptions=True)

    def mark(self) -> dict[str, object]:
        counters = [v.counter for v in self.viewers]
        return {"event": "mark", "time": time.monotonic(), "viewers": len(counters),
                "failures": self.failures,
                "packets": [c.packets_received for c in counters],
                "bytes": [c.bytes for c in counters],
                "lost": [c.lost for c in counters],
                "expected": [c.expected for c in counters]}

    def latency(self) -> dict[str, object]:
        samples: list[float] = []
        for viewer in self.viewers:
            stamps = viewer.counter.stamps
            if stamps:
                samples.extend(stamps)
                stamps.clear()
        return {"event": "latency", "ms": [round(s, 3) for s in samples]}


async def run(args: argparse.Namespace) -> None:
    connector = aiohttp.TCPConnector(limit=20)
    async with aiohttp.ClientSession(connector=connector) as http:
        janus = JanusSession(http, args.url) if args.kind == "janus" else None
        if janus is not None:
            await janus.start()
        crowd = Crowd(args, http, janus)
        try:
            await crowd.join(args.viewers)
            emit({"event": "connected", "viewers": len(crowd.viewers),
                  "failures": crowd.failures})
            loop = asyncio.get_running_loop()
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line:
                    break
                command, _, value = line.strip().partition(" ")
                if command == "mark":
                    emit(crowd.mark())
                elif command == "latency":
                    emit(crowd.latency())
                elif command == "join":
                    await crowd.join(int(value))
                    emit({"event": "joined", "viewers": len(crowd.viewers),
                          "failures": crowd.failures})
                elif command == "leave":
                    await crowd.leave(int(value))
                    emit({"event": "left", "viewers": len(crowd.viewers)})
        finally:
            await crowd.leave(len(crowd.viewers))
            if janus is not None:
                await janus.close()


__benchmark__ = False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", choices=("whep", "janus"), default="whep")
    parser.add_argument("--url", required=True)
    parser.add_argument("--viewers", type=int, default=1)
    parser.add_argument("--cameras", type=int, default=1)
    parser.add_argument("--first", type=int, default=0,
                        help="offset of the first viewer in the camera rotation")
    parser.add_argument("--latency", action="store_true")
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
