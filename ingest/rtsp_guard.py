"""The RTSP egress guard: FFmpeg never connects to a camera itself.

For each RTSP session FFmpeg is given ``rtsp://127.0.0.1:<port>/...``, a listener owned by the
guard that accepts exactly one connection, from this process. The guard connects to the checked
camera address (TLS to that address with the URL's host name as the certificate name for
``rtsps``) and reads the control exchange until PLAY:

* a 3xx response never reaches FFmpeg (which would follow any ``Location``, loopback and cloud
  metadata included): the session ends and the source checks the ``Location`` with the same
  rules as the first URL (``next_hop``) before it connects there;
* Transport: interleaved TCP is required unless the camera is configured for UDP; with UDP, the
  camera's ``source=``/``destination=`` are replaced by the address the guard is connected to,
  so FFmpeg sends its RTP/RTCP nowhere else.

After the PLAY response the guard copies bytes both ways in large chunks without parsing. FFmpeg
still does authentication; its ``Authorization`` headers pass through untouched.

One guard thread per session: the copy never runs on the event loop that sends video.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from ingest.rtsp_failures import Failure
from ingest.rtsp_messages import Message, ProtocolViolation, take_message, transports
from rtcc.camera_url import SafeUrl, check_camera_url, parse_rtsp_url
from rtcc.errors import UnsafeUrl

log = logging.getLogger(__name__)

MAX_REDIRECTS = 3
CHUNK = 262_144
"""Bytes read per copy: whatever the kernel holds, so a busy camera costs few Python calls."""
LOOPBACK = "127.0.0.1"
_POLL = 0.5
"""Seconds between looks at the stop flag while nothing arrives."""

Transport = Literal["tcp", "udp"]


@dataclass(frozen=True, slots=True)
class EgressRules:
    """What the sessions of one camera may connect to."""

    allow_networks: tuple[str, ...] | None = None
    """The networks besides public addresses that every hop (first URL and each redirect) may
    reach: the server's allowlist decision for this camera. None: the camera's own address was
    not checked (the owner's agent, on the owner's network): a redirect may then only stay on
    the camera's host."""
    verify_tls: bool = True
    """Verify an ``rtsps`` camera's certificate with the system's CAs."""


@dataclass(frozen=True, slots=True)
class Hop:
    """One camera address of a session: the first URL or a checked redirect."""

    url: str
    """The camera URL of this hop, without credentials."""
    host: str
    port: int
    address: str
    """What the guard connects to: the checked address, or the host name on the owner's LAN."""
    tls: bool
    credentials: bool = True
    """Whether FFmpeg may send the camera's user name and password on this hop (a redirect to
    another host gets none, as FFmpeg itself would do)."""

    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def local_url(self, port: int) -> str:
        """The URL FFmpeg opens: the guard's listener, with this hop's path and query."""
        parts = urlsplit(self.url)
        return urlunsplit(("rtsp", f"{LOOPBACK}:{port}", parts.path or "/", parts.query, ""))


def first_hop(url: str, checked: SafeUrl | None) -> Hop:
    """The hop of the configured URL: to the checked address, or (None) to the host itself."""
    address = parse_rtsp_url(url)
    pinned = checked.address if checked is not None and checked.address else address.host
    return Hop(url, address.host, address.port, pinned, address.scheme == "rtsps")


def next_hop(location: str, current: Hop, first: Hop, rules: EgressRules) -> Hop:
    """Check where a camera redirected to, with the rules of the first URL. Runs in the demux
    thread (it may resolve a name). Raises UnsafeUrl saying why the redirect is refused."""
    shown = _shown_host(location)
    if rules.allow_networks is None:
        try:
            target = parse_rtsp_url(location)
        except UnsafeUrl as exc:
            raise UnsafeUrl(f"the camera redirected to {shown}, which is refused: {exc}") from None
        if target.host.lower() != current.host.lower():
            raise UnsafeUrl(f"the camera redirected to {shown}, which is refused: a camera on "
                            "the owner's network may only redirect to its own address")
        return Hop(location, target.host, target.port, current.address,
                   target.scheme == "rtsps", credentials=current.credentials)
    try:
        checked = asyncio.run(check_camera_url(location, allow_networks=rules.allow_networks))
    except UnsafeUrl as exc:
        raise UnsafeUrl(f"the camera redirected to {shown}, which is refused: {exc}") from None
    assert checked.address is not None  # only via_agent leaves it unresolved
    same_host = checked.host == first.host.lower() and first.credentials
    return Hop(checked.url, checked.host, checked.port, checked.address,
               checked.scheme == "rtsps", credentials=same_host)


def _shown_host(location: str) -> str:
    try:
        host = urlsplit(location).hostname
    except ValueError:
        host = None
    return host or "an invalid address"


class RtspGuard:
    """One RTSP session's proxy: start, hand ``local_url`` to FFmpeg, close when FFmpeg is done.

    After ``close`` the outcome is readable: ``refusal`` (the guard ended the session and why),
    ``location`` (the camera redirected; not yet checked), ``camera_error`` (connecting to or
    talking with the camera failed), ``described`` (the camera answered DESCRIBE with 2xx: it
    speaks RTSP, so what FFmpeg could not read is its stream description).

    While it runs, ``last_camera_data`` is when bytes last arrived from the camera
    (``time.monotonic``; 0 before the first): the source's stall watchdog reads it.
    """

    def __init__(
        self,
        name: str,
        hop: Hop,
        *,
        transport: Transport,
        verify_tls: bool,
        connect_timeout: float,
    ) -> None:
        self.name = name
        self.hop = hop
        self._transport = transport
        self._verify_tls = verify_tls
        self._connect_timeout = connect_timeout
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._ffmpeg: socket.socket | None = None
        self._camera: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.refusal: Failure | None = None
        self.location: str | None = None
        self.camera_error: OSError | None = None
        self.playing = False
        self.described = False
        self.last_camera_data = 0.0

    def start(self) -> str:
        """Listen on loopback and start the guard thread; returns the URL for FFmpeg."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((LOOPBACK, 0))
        listener.listen(1)
        listener.setblocking(False)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._thread = threading.Thread(
            target=self._run, name=f"rtsp-guard:{self.name}", daemon=True
        )
        self._thread.start()
        return self.hop.local_url(self.port)

    def close(self) -> None:
        """End the session (both connections) and wait for the thread. Idempotent."""
        self._stop.set()
        for sock in (self._ffmpeg, self._camera):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._connect_timeout + 2 * _POLL)
            if thread.is_alive():
                log.warning("camera %s: the RTSP guard thread is still connecting", self.name)

    # -- guard thread -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            ffmpeg = self._accept()
            if ffmpeg is None:
                return
            self._ffmpeg = ffmpeg
            camera = self._connect()
            if camera is None:
                return
            self._camera = camera
            if self._control(ffmpeg, camera):
                self._copy(ffmpeg, camera)
        except OSError as exc:
            if not self._stop.is_set() and self.camera_error is None:
                self.camera_error = exc
        finally:
            for sock in (self._listener, self._ffmpeg, self._camera):
                if sock is not None:
                    sock.close()

    def _accept(self) -> socket.socket | None:
        listener = self._listener
        assert listener is not None
        deadline = time.monotonic() + self._connect_timeout + 1.0
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                if not select.select([listener], [], [], _POLL)[0]:
                    continue
                try:
                    conn, peer = listener.accept()
                except BlockingIOError:
                    continue
                if _opened_by_this_process(peer):
                    conn.setblocking(True)
                    return conn
                log.warning("camera %s: refused a connection to the RTSP guard from another "
                            "process (%s:%s)", self.name, peer[0], peer[1])
                conn.close()
            return None
        finally:
            listener.close()

    def _connect(self) -> socket.socket | None:
        hop = self.hop
        try:
            sock = socket.create_connection((hop.address, hop.port), self._connect_timeout)
            if hop.tls:
                context = ssl.create_default_context()
                if not self._verify_tls:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                sock = context.wrap_socket(sock, server_hostname=hop.host)
            sock.settimeout(None)
        except OSError as exc:
            self.camera_error = exc
            return None
        return sock

    def _recv(self, ready: Sequence[socket.socket], ffmpeg: socket.socket,
              from_ffmpeg: bytearray, from_camera: bytearray) -> bool:
        for sock in ready:
            data = sock.recv(CHUNK)
            if not data:
                return False
            if sock is ffmpeg:
                from_ffmpeg.extend(data)
            else:
                self.last_camera_data = time.monotonic()
                from_camera.extend(data)
        return True

    def _ready(self, ffmpeg: socket.socket, camera: socket.socket) -> list[socket.socket]:
        if isinstance(camera, ssl.SSLSocket) and camera.pending():
            return [camera]  # decrypted bytes the kernel no longer signals
        readable: list[socket.socket] = select.select([ffmpeg, camera], [], [], _POLL)[0]
        return readable

    def _control(self, ffmpeg: socket.socket, camera: socket.socket) -> bool:
        """Pass the exchange until the PLAY response; False when the session ended."""
        from_ffmpeg, from_camera = bytearray(), bytearray()
        methods: dict[str, str] = {}
        answered = False
        while not self._stop.is_set():
            if not self._recv(self._ready(ffmpeg, camera), ffmpeg,
                              from_ffmpeg, from_camera):
                return False
            try:
                while (request := take_message(from_ffmpeg)) is not None:
                    camera.sendall(self._request(request, methods))
            except ProtocolViolation as exc:
                self.refusal = Failure(f"the RTSP client's request was refused: {exc}", True)
                return False
            try:
                while (reply := take_message(from_camera)) is not None:
                    answered = True
                    out = self._reply(reply, methods, camera)
                    if out is None:
                        return False
                    ffmpeg.sendall(out)
                    if self.playing:
                        ffmpeg.sendall(bytes(from_camera))
                        camera.sendall(bytes(from_ffmpeg))
                        return True
            except ProtocolViolation as exc:
                where = self.hop.endpoint
                reason = (f"the camera at {where} sent {exc}" if answered
                          else f"not an RTSP server at {where}")
                self.refusal = Failure(reason)
                return False
        return False

    def _request(self, request: Message, methods: dict[str, str]) -> bytes:
        cseq = request.header("CSeq")
        if cseq is not None and request.method:
            methods[cseq] = request.method.upper()
        header = request.header("Transport")
        if request.method.upper() != "SETUP" or header is None:
            return request.raw
        offers = transports(header)
        if self._transport == "tcp":
            offers = [t for t in offers if t.lower_transport == "TCP" and t.has("interleaved")]
        else:
            offers = [t.without("destination", "source") for t in offers
                      if t.lower_transport == "UDP" and not t.has("multicast")]
        if not offers:
            raise ProtocolViolation(f"no {self._transport.upper()} transport in SETUP")
        return request.with_header("Transport", ",".join(str(t) for t in offers))

    def _reply(self, reply: Message, methods: dict[str, str], camera: socket.socket
               ) -> bytes | None:
        """The bytes to pass to FFmpeg, or None when the session ends here."""
        if not reply.is_response:
            return reply.raw  # a request from the camera, or an early interleaved frame
        cseq = reply.header("CSeq")
        method = methods.pop(cseq, "") if cseq is not None else ""
        status = reply.status
        if 300 <= status < 400:
            self.location = reply.header("Location") or ""
            return None
        if not 200 <= status < 300:
            return reply.raw
        if method == "PLAY":
            self.playing = True
        elif method == "DESCRIBE":
            self.described = True
        header = reply.header("Transport")
        if method != "SETUP" or header is None:
            return reply.raw
        chosen = transports(header)
        spec = chosen[0] if chosen else None
        where = self.hop.endpoint
        if self._transport == "tcp":
            if spec is None or spec.lower_transport != "TCP" or not spec.has("interleaved"):
                self.refusal = Failure(
                    f"the camera at {where} answered SETUP without interleaved TCP although "
                    "only TCP was offered: refused", fatal=True, refused=True)
                return None
            return reply.raw
        if spec is None or spec.lower_transport != "UDP" or spec.has("multicast"):
            self.refusal = Failure(
                f"the camera at {where} answered SETUP without unicast UDP: refused",
                fatal=True, refused=True)
            return None
        # FFmpeg sends its RTP/RTCP to source= (or to the URL's host, here the guard): point it
        # at the camera address this session is connected to, whatever the camera said.
        peer = str(camera.getpeername()[0])
        rewritten = spec.without("source", "destination").plus("source", peer)
        return reply.with_header("Transport", str(rewritten))

    def _copy(self, ffmpeg: socket.socket, camera: socket.socket) -> None:
        """After PLAY: bytes both ways, in chunks, until either side closes."""
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        other = {ffmpeg: camera, camera: ffmpeg}
        while not self._stop.is_set():
            for sock in self._ready(ffmpeg, camera):
                size = sock.recv_into(buffer)
                if not size:
                    return
                if sock is camera:
                    self.last_camera_data = time.monotonic()
                other[sock].sendall(view[:size])


def _opened_by_this_process(peer: tuple[str, int]) -> bool:
    """Whether the loopback client socket at ``peer`` is one of this process's file descriptors
    (Linux: its inode in /proc/net/tcp among /proc/self/fd). True where /proc is missing."""
    host, port = peer[0], peer[1]
    local = f"{socket.inet_aton(host)[::-1].hex().upper()}:{port:04X}"
    try:
        with open("/proc/net/tcp") as table:
            rows = table.read().splitlines()[1:]
    except OSError:
        return True
    inodes = {fields[9] for fields in (row.split() for row in rows) if fields[1] == local}
    if not inodes:
        return False
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") in wanted:
                return True
        except OSError:
            continue
    return False
