"""The RTSP egress guard against hostile cameras (a small RTSP server written here) and the
GStreamer simulator: redirects and foreign RTP destinations never reach FFmpeg."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from ingest.handoff import LoopHandoff
from ingest.rtsp import RtspTarget
from ingest.rtsp_guard import Hop, RtspGuard
from ingest.rtsp_messages import ProtocolViolation, TransportSpec, take_message, transports
from rtcc.config import IngestConfig, SecurityConfig
from rtcc.errors import SourceUnavailable
from rtcc.hub import Stream, StreamHub, StreamSettings
from rtcc.media import StreamState
from server.camera_sources import rtsp_source_factory
from tests.fixtures.camsim import SECURE_PASSWORD, CamsimHandle
from tests.ingest.helpers import decode_keyframe, wait_until

HOSTILE = "127.0.0.2"
FORBIDDEN = "127.0.0.3"
SETTINGS = IngestConfig(open_timeout=2.0, stall_timeout=2.0, backoff_initial=0.2,
                        backoff_max=1.0, fatal_retry=30.0, rtsp_client="ffmpeg")
"""The guard sits in front of FFmpeg; the native client hands redirects to it."""
SDP = (
    "v=0\r\no=- 0 0 IN IP4 127.0.0.2\r\ns=hostile\r\nt=0 0\r\n"
    "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:track1\r\n"
)

Answer = tuple[int, dict[str, str], str]


@dataclass
class Request:
    method: str
    uri: str
    headers: dict[str, str]


@dataclass
class HostileCamera:
    """An RTSP server that answers each request with ``answer(request)``."""

    answer: Callable[[Request], Answer]
    requests: list[Request] = field(default_factory=list)
    port: int = 0

    def url(self, path: str = "/cam") -> str:
        return f"rtsp://{HOSTILE}:{self.port}{path}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                lines = head.strip().split("\r\n")
                method, uri, _version = lines[0].split(" ")
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                if int(headers.get("content-length", "0")):
                    await reader.readexactly(int(headers["content-length"]))
                request = Request(method, uri, headers)
                self.requests.append(request)
                status, extra, body = self.answer(request)
                lines = [f"RTSP/1.0 {status} X", f"CSeq: {headers.get('cseq', '0')}"]
                lines += [f"{name}: {value}" for name, value in extra.items()]
                lines.append(f"Content-Length: {len(body)}")
                writer.write(("\r\n".join(lines) + "\r\n\r\n" + body).encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def hostile(answer: Callable[[Request], Answer]) -> AsyncIterator[HostileCamera]:
    camera = HostileCamera(answer)
    server = await asyncio.start_server(camera.handle, HOSTILE, 0)
    camera.port = server.sockets[0].getsockname()[1]
    async with server:
        yield camera


@asynccontextmanager
async def forbidden_listener() -> AsyncIterator[tuple[int, list[str]]]:
    """A TCP service on the refused address that records every connection it gets."""
    connections: list[str] = []

    async def handle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(str(writer.get_extra_info("peername")))
        writer.close()

    server = await asyncio.start_server(handle, FORBIDDEN, 0)
    async with server:
        yield server.sockets[0].getsockname()[1], connections


def described(request: Request) -> Answer:
    if request.method == "OPTIONS":
        return 200, {"Public": "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN"}, ""
    if request.method == "DESCRIBE":
        return 200, {"Content-Type": "application/sdp",
                     "Content-Base": request.uri + "/"}, SDP
    return 200, {"Session": "12345678"}, ""


def register(hub: StreamHub, target: RtspTarget, allow: list[str],
             settings: IngestConfig = SETTINGS) -> Stream:
    factory = rtsp_source_factory("cam/main", target, settings,
                                  SecurityConfig(allow_private_camera_hosts=allow), LoopHandoff(),
                                  allowlisted=True)
    return hub.register("cam", "main", factory, StreamSettings(start_timeout=6))


@pytest.mark.parametrize("client", ["ffmpeg", "native"])
@pytest.mark.parametrize(
    ("where", "why"),
    [
        (FORBIDDEN, f"{FORBIDDEN} is a loopback address"),
        ("169.254.169.254", "169.254.169.254 is a cloud metadata address"),
    ],
)
async def test_a_redirect_to_a_refused_address_is_never_followed(
    where: str, why: str, client: Literal["ffmpeg", "native"]
) -> None:
    async with forbidden_listener() as (port, connections):
        location = f"rtsp://{where}:{port}/stolen"

        def answer(request: Request) -> Answer:
            if request.method == "OPTIONS":
                return 200, {"Public": "OPTIONS, DESCRIBE"}, ""
            return 302, {"Location": location}, ""

        async with hostile(answer) as camera, StreamHub() as hub:
            target = RtspTarget(camera.url(), "admin", SECURE_PASSWORD)
            stream = register(hub, target, [f"{HOSTILE}/32"],
                              SETTINGS.model_copy(update={"rtsp_client": client}))
            with pytest.raises(SourceUnavailable, match="redirected to"):
                await stream.subscribe("viewer")
            assert stream.state is StreamState.ERROR
            assert stream.reason.startswith(f"the camera redirected to {where}, which is refused")
            assert why in stream.reason
            source = stream.stats()["source"]
            assert isinstance(source, dict)
            assert source["refused"] == stream.reason
            if client == "native":  # it hands the redirect to the FFmpeg reader and its guard
                assert source["native_unsupported"] == "the camera redirected to another URL"
            assert SECURE_PASSWORD not in str(hub.stats())
            assert [r.method for r in camera.requests][:2] == ["OPTIONS", "DESCRIBE"]
            await asyncio.sleep(0.3)
        assert connections == []


async def test_an_allowed_redirect_is_followed_to_the_checked_camera(
    camsim: CamsimHandle,
) -> None:
    def answer(_request: Request) -> Answer:
        return 302, {"Location": camsim.url("open")}, ""

    async with hostile(answer) as camera, StreamHub() as hub:
        stream = register(hub, RtspTarget(camera.url()), [f"{HOSTILE}/32", "127.0.0.1/32"])
        async with await stream.subscribe("viewer") as sub:
            frame = await asyncio.wait_for(sub.get(), 10)
        assert decode_keyframe(frame) == (640, 360)
        source = stream.stats()["source"]
        assert isinstance(source, dict)
        assert source["redirects"] == 1
        assert source["connected_to"] == f"127.0.0.1:{camsim.port}"


async def test_a_redirect_loop_ends_after_three_hops() -> None:
    async with hostile(lambda _request: (302, {"Location": "rtsp://127.0.0.2:1/x"}, "")) as camera:
        def answer(_request: Request) -> Answer:
            return 302, {"Location": camera.url("/again")}, ""

        camera.answer = answer
        async with StreamHub() as hub:
            stream = register(hub, RtspTarget(camera.url()), [f"{HOSTILE}/32"])
            with pytest.raises(SourceUnavailable, match="redirected more than 3 times"):
                await stream.subscribe("viewer")
        assert len(camera.requests) == 4  # the first URL and three redirects, no more


def _udp(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


def _received(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            sock.recv(2048)
        except BlockingIOError:
            return count
        count += 1


def _free_udp_pair() -> int:
    """An even port whose pair is free on both test addresses."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((FORBIDDEN, 0))
            port = int(probe.getsockname()[1]) & ~1
        try:
            for host in (FORBIDDEN, HOSTILE):
                for p in (port, port + 1):
                    _udp(host, p).close()
        except OSError:
            continue
        return port


async def test_a_udp_source_elsewhere_is_not_obeyed() -> None:
    server_port = _free_udp_pair()
    sockets = {(h, p): _udp(h, p) for h in (FORBIDDEN, HOSTILE)
               for p in (server_port, server_port + 1)}

    def answer(request: Request) -> Answer:
        if request.method == "SETUP":
            client = request.headers["transport"].split("client_port=")[1].split(";")[0]
            return 200, {"Session": "1", "Transport": (
                f"RTP/AVP/UDP;unicast;client_port={client};"
                f"server_port={server_port}-{server_port + 1};source={FORBIDDEN}"
            )}, ""
        return described(request)

    try:
        async with hostile(answer) as camera, StreamHub() as hub:
            stream = register(hub, RtspTarget(camera.url(), transport="udp"), [f"{HOSTILE}/32"])
            stream_task = asyncio.create_task(stream.subscribe("viewer"))
            await wait_until(lambda: any(r.method == "PLAY" for r in camera.requests), 5, "PLAY")
            await asyncio.sleep(1.0)
            stream_task.cancel()
            with pytest.raises((asyncio.CancelledError, SourceUnavailable)):
                await stream_task
        setup = next(r for r in camera.requests if r.method == "SETUP")
        assert "destination" not in setup.headers["transport"]
        to_camera = sum(_received(sockets[HOSTILE, p]) for p in (server_port, server_port + 1))
        elsewhere = sum(_received(sockets[FORBIDDEN, p]) for p in (server_port, server_port + 1))
        assert to_camera > 0  # FFmpeg did send its RTP/RTCP: to the camera it is connected to
        assert elsewhere == 0
    finally:
        for sock in sockets.values():
            sock.close()


async def test_tcp_offers_only_interleaved_and_refuses_a_udp_answer() -> None:
    server_port = _free_udp_pair()
    forbidden = [_udp(FORBIDDEN, p) for p in (server_port, server_port + 1)]

    def answer(request: Request) -> Answer:
        if request.method == "SETUP":
            return 200, {"Session": "1", "Transport": (
                f"RTP/AVP/UDP;unicast;client_port=5000-5001;"
                f"server_port={server_port}-{server_port + 1};source={FORBIDDEN}"
            )}, ""
        return described(request)

    try:
        async with hostile(answer) as camera, StreamHub() as hub:
            stream = register(hub, RtspTarget(camera.url()), [f"{HOSTILE}/32"])
            with pytest.raises(SourceUnavailable, match="without interleaved TCP"):
                await stream.subscribe("viewer")
            assert stream.state is StreamState.ERROR
            await asyncio.sleep(0.3)
        setup = next(r for r in camera.requests if r.method == "SETUP")
        assert setup.headers["transport"].startswith("RTP/AVP/TCP")
        assert "interleaved=" in setup.headers["transport"]
        assert "client_port" not in setup.headers["transport"]
        assert not any(r.method == "PLAY" for r in camera.requests)
        assert sum(_received(sock) for sock in forbidden) == 0
    finally:
        for sock in forbidden:
            sock.close()


async def test_the_happy_path_goes_through_the_guard(camsim: CamsimHandle) -> None:
    target = camsim.target("secure")
    async with StreamHub() as hub:
        stream = register(hub, target, ["127.0.0.1/32"])
        async with await stream.subscribe("viewer") as sub:
            frame = await asyncio.wait_for(sub.get(), 10)
            assert any(t.name == "rtsp-guard:cam/main" for t in threading.enumerate())
        assert decode_keyframe(frame) == (640, 360)
        source = stream.stats()["source"]
        assert isinstance(source, dict)
        assert source["connected_to"] == f"127.0.0.1:{camsim.port}"
        assert source["redirects"] == 0
        assert "refused" not in source
        assert SECURE_PASSWORD not in str(hub.stats())


async def test_the_loopback_listener_refuses_other_processes() -> None:
    async with hostile(described) as camera:
        hop = Hop(camera.url(), HOSTILE, camera.port, HOSTILE, tls=False)
        guard = RtspGuard("cam/main", hop, transport="tcp", verify_tls=True, connect_timeout=2)
        guard.start()
        try:
            probe = (
                "import socket,sys; s=socket.create_connection(('127.0.0.1', int(sys.argv[1])));"
                "s.sendall(b'OPTIONS rtsp://x/ RTSP/1.0\\r\\nCSeq: 1\\r\\n\\r\\n');"
                "s.settimeout(3)\ntry: print(len(s.recv(100)))\n"
                "except ConnectionResetError: print(0)"
            )
            result = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-c", probe, str(guard.port)],
                capture_output=True, text=True, timeout=10,
            )
            assert result.stdout.strip() == "0"  # closed without an answer
            assert camera.requests == []
            # This process is served.
            reader, writer = await asyncio.open_connection("127.0.0.1", guard.port)
            writer.write(b"OPTIONS rtsp://x/ RTSP/1.0\r\nCSeq: 7\r\n\r\n")
            reply = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert reply.startswith(b"RTSP/1.0 200")
            writer.close()
        finally:
            await asyncio.to_thread(guard.close)
        assert [r.method for r in camera.requests] == ["OPTIONS"]


def test_messages_are_framed_and_transports_rewritten() -> None:
    buffer = bytearray(b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: 3\r\n\r\nv=0$\x00\x00\x02ab")
    message = take_message(buffer)
    assert message is not None
    assert (message.status, message.header("cseq"), message.body) == (200, "2", b"v=0")
    frame = take_message(buffer)
    assert frame is not None
    assert (frame.channel, frame.body) == (0, b"ab")
    assert take_message(buffer) is None
    spec = TransportSpec.parse("RTP/AVP;unicast;client_port=5000-5001;source=10.0.0.9")
    assert spec.lower_transport == "UDP"
    assert str(spec.without("source").plus("source", "192.0.2.1")) == (
        "RTP/AVP;unicast;client_port=5000-5001;source=192.0.2.1"
    )
    assert [t.lower_transport for t in transports("RTP/AVP/TCP;interleaved=0-1,RTP/AVP")] == [
        "TCP", "UDP"
    ]
    for garbage in (b"SSH-2.0-OpenSSH_9.2p1\r\n", b"HTTP/1.1 400 Bad Request\r\n\r\n"):
        with pytest.raises(ProtocolViolation):
            take_message(bytearray(garbage))


async def test_an_rtsps_camera_with_an_untrusted_certificate_is_refused(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", f"/CN={HOSTILE}", "-addext", f"subjectAltName=IP:{HOSTILE}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    camera = HostileCamera(described)
    server = await asyncio.start_server(camera.handle, HOSTILE, 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    async with server, StreamHub() as hub:
        stream = register(hub, RtspTarget(f"rtsps://{HOSTILE}:{port}/cam"), [f"{HOSTILE}/32"])
        with pytest.raises(SourceUnavailable, match="TLS certificate that does not verify"):
            await stream.subscribe("viewer")
        assert stream.state is StreamState.ERROR
        source = stream.stats()["source"]
        assert isinstance(source, dict)
        assert source["tls"] is True
    assert camera.requests == []  # nothing was sent to a camera whose name did not verify
