"""The RTSP server a department's VMS pulls granted cameras from.

One TCP connection is one view of one camera: DESCRIBE authenticates the VMS account (Basic:
the account's name and one of its API tokens) and asks the gate (``RtspGate``, the media access
contract) to open the view, which audits it and hands it to the policy decision point; SETUP
accepts RTP/AVP/TCP interleaved or unicast RTP/AVP over UDP; PLAY starts the frames. The view
ends, audited, when the VMS tears down or leaves, when the gate's enforcement says it is no
longer allowed, when the hub closes the camera's sessions (a consent change), or when the VMS
stops reading (TCP).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass
from typing import Protocol

from relay.rtsp_out.media import RtpWriter, sdp
from relay.rtsp_out.messages import (
    METHODS,
    SUPPORTED,
    RtspError,
    RtspRequest,
    basic_credentials,
    choose_transport,
    error_response,
    media_path,
    parse_request,
    response,
)
from rtcc.access import ViewGrant, ViewStopper
from rtcc.errors import CameraNotFound, ProfileNotFound, SourceUnavailable, StreamClosed
from rtcc.hub import StreamHub, Subscription
from rtcc.media import EncodedFrame
from rtcc.principal import Principal

log = logging.getLogger(__name__)

REALM = "rtcc"
SESSION_TIMEOUT = 60


class ViewRefused(Exception):
    """The gate refused a view: ``status`` (401, 403, 404, 400, 429, 503) and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RtspGate(Protocol):
    """What the server needs from security, wired by the composition root."""

    async def authenticate(self, username: str, password: str) -> Principal | None:
        """The account ``username`` if ``password`` is one of its valid API tokens."""
        ...

    async def open_view(self, principal: Principal, camera_id: str, profile: str,
                        purpose: str, incident: str, source: str) -> ViewGrant:
        """Authorize and audit a view (``MediaAccess.open_view``); raises ViewRefused."""
        ...

    async def close_view(self, grant: ViewGrant, reason: str) -> None: ...

    def attach(self, grant: ViewGrant, stop: ViewStopper) -> None:
        """Hand the open view to continuous enforcement."""
        ...


@dataclass(frozen=True, slots=True)
class RtspOutSettings:
    host: str = "127.0.0.1"
    port: int = 8555
    max_sessions: int = 64
    """Connections held at once; one more is answered 503."""
    request_timeout: float = 10.0
    """Seconds a client has for each request until it plays."""
    write_timeout: float = 10.0
    """Seconds a VMS may leave its stream unread before its session ends."""
    max_request_bytes: int = 8192
    """Request line and headers of one request."""
    max_auth_failures: int = 3
    """Wrong credentials on one connection before it is closed."""
    write_buffer_bytes: int = 4 * 1024 * 1024
    """Bytes queued for one VMS before the sender waits for it to read."""
    udp: bool = True
    """Serve RTP over UDP (unicast, to the VMS's own address) as well as interleaved TCP."""
    profile: str = "main"
    purpose: str = "re-published to the department's VMS"


class RtspOutServer:
    """Listens on ``settings.host``/``port`` (0: any free port, see ``port``)."""

    def __init__(self, settings: RtspOutSettings, hub: StreamHub, gate: RtspGate) -> None:
        self.settings = settings
        self.hub = hub
        self.gate = gate
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._closing = False
        self.refused_full = 0

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            return 0
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.settings.host, self.settings.port,
            limit=self.settings.max_request_bytes)
        log.info("VMS re-publishing: rtsp://%s:%d/cameras/{camera_id}", self.settings.host,
                 self.port)

    async def aclose(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
        connections = list(self._connections)
        await asyncio.gather(*(c.end("the server is stopping") for c in connections))
        for connection in connections:
            await connection.finished.wait()
        if self._server is not None:
            await self._server.wait_closed()

    def stats(self) -> list[dict[str, object]]:
        return [c.stats() for c in self._connections]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = _Connection(self, reader, writer)
        full = len(self._connections) >= self.settings.max_sessions or self._closing
        self._connections.add(connection)
        try:
            await connection.serve(full)
        finally:
            self._connections.discard(connection)
            connection.finished.set()


class _Connection:
    def __init__(self, server: RtspOutServer, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self._server = server
        self._settings = server.settings
        self._reader = reader
        self._writer = writer
        peer = writer.get_extra_info("peername")
        self.source = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        self.principal: Principal | None = None
        self.grant: ViewGrant | None = None
        self.subscription: Subscription | None = None
        self.rtp: RtpWriter | None = None
        self.session_id = ""
        self.auth_failures = 0
        self.ended = False
        self.end_reason = ""
        self.finished = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._uri = ""
        self._udp: list[asyncio.DatagramTransport] = []
        self.dropped_frames = 0
        self._skipping = False

    def stats(self) -> dict[str, object]:
        return {"source": self.source, "user": self.principal.username if self.principal else "",
                "camera_id": self.grant.camera_id if self.grant else "",
                "playing": self._pump is not None,
                "packets": self.rtp.packets_sent if self.rtp else 0,
                "bytes": self.rtp.bytes_sent if self.rtp else 0,
                "transport": "udp" if self._udp else "tcp", "dropped_frames": self.dropped_frames}

    async def serve(self, full: bool) -> None:
        try:
            if full:
                request = await self._read_request()
                if request is not None:
                    self._server.refused_full += 1
                    self._send(error_response(RtspError(
                        503, "the server holds as many VMS sessions as it allows; try later"),
                        request.cseq))
                return
            while not self.ended:
                try:
                    request = await self._read_request()
                except RtspError as exc:
                    self._send(error_response(exc, ""))
                    if exc.status in (413, 431):
                        break  # the stream cannot be resynchronised after an oversized block
                    continue
                if request is None:
                    break
                if not await self._answer(request):
                    break
            await self.end(self.end_reason or "the VMS closed the connection")
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            await self.end("the VMS closed the connection or stopped sending requests")
        finally:
            await self.end("the connection ended")
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()

    async def _read_request(self) -> RtspRequest | None:
        """The next request; interleaved RTCP from the client is read and skipped."""
        reader = self._reader
        while True:
            if self._pump is None:
                wait: float | None = self._settings.request_timeout
            elif self._udp:
                wait = SESSION_TIMEOUT  # over UDP only keep-alive requests show the VMS is there
            else:
                wait = None  # over TCP the VMS may stay silent: a dead one stops reading
            async with asyncio.timeout(wait):
                first = await reader.read(1)
            if not first:
                return None
            if first == b"$":
                header = await reader.readexactly(3)
                await reader.readexactly(int.from_bytes(header[1:3], "big"))
                continue
            try:
                async with asyncio.timeout(self._settings.request_timeout):
                    rest = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.LimitOverrunError, ValueError):
                raise RtspError(431, f"a request's line and headers must fit in "
                                     f"{self._settings.max_request_bytes} bytes") from None
            block = (first + rest)[:-4].lstrip(b"\r\n")
            request = parse_request(block)
            length = request.content_length
            if length > self._settings.max_request_bytes:
                raise RtspError(413, "request bodies are limited to "
                                     f"{self._settings.max_request_bytes} bytes")
            if length:
                async with asyncio.timeout(self._settings.request_timeout):
                    await reader.readexactly(length)
            return request

    def _send(self, data: bytes) -> None:
        if not self._writer.is_closing():
            self._writer.write(data)

    async def _answer(self, request: RtspRequest) -> bool:
        """Answer one request; False closes the connection."""
        cseq = request.cseq
        try:
            method = request.method
            if method == "OPTIONS":
                self._send(response(200, cseq, {"Public": ", ".join(SUPPORTED)}))
            elif method == "DESCRIBE":
                body = await self._describe(request)
                self._send(response(200, cseq, {"Content-Base": self._uri.rstrip("/") + "/",
                                                "Content-Type": "application/sdp"}, body))
            elif method == "SETUP":
                self._send(response(200, cseq, await self._setup(request)))
            elif method == "PLAY":
                self._send(response(200, cseq, self._play(request)))
                self._start_pump()
            elif method == "GET_PARAMETER":
                self._send(response(200, cseq, self._session_header()))
            elif method == "TEARDOWN":
                self._send(response(200, cseq))
                self.end_reason = "the VMS ended the session (TEARDOWN)"
                return False
            elif method in METHODS:
                raise RtspError(405, f"{method} is not served here; this server only plays")
            else:
                raise RtspError(501, f"{method[:20]} is not an RTSP method this server knows")
        except RtspError as exc:
            headers: dict[str, str] = {}
            if exc.status == 401:
                headers["WWW-Authenticate"] = f'Basic realm="{REALM}"'
            if exc.status == 405:
                headers["Allow"] = ", ".join(SUPPORTED)
            self._send(error_response(exc, cseq, headers))
            if exc.status == 401 and self.auth_failures >= self._settings.max_auth_failures:
                self.end_reason = "too many wrong credentials"
                return False
        except (ConnectionError, TimeoutError):
            raise
        except Exception:  # a fault of this server: this VMS gets 500, the others keep going
            log.exception("VMS client %s: %s %s failed", self.source, request.method,
                          request.uri[:100])
            self._send(error_response(RtspError(500, "the server failed to answer; try "
                                                     "again or tell an administrator"), cseq))
            self.end_reason = "the server failed to answer a request"
            return False
        return True

    async def _authenticate(self, request: RtspRequest) -> Principal:
        if self.principal is not None:
            return self.principal
        credentials = basic_credentials(request.header("authorization"))
        if credentials is None:
            raise RtspError(401, "give the VMS account's name and one of its API tokens")
        principal = await self._server.gate.authenticate(*credentials)
        if principal is None:
            self.auth_failures += 1
            log.warning("VMS client %s: wrong credentials for account %r (%d on this "
                        "connection)", self.source, credentials[0][:64], self.auth_failures)
            raise RtspError(401, "the account name or API token is wrong, expired or revoked")
        self.principal = principal
        return principal

    async def _describe(self, request: RtspRequest) -> bytes:
        path = media_path(request.uri)
        principal = await self._authenticate(request)
        if self.grant is not None:
            if self.grant.camera_id != path.camera_id:
                raise RtspError(455, "this connection already carries camera "
                                     f"{self.grant.camera_id}; open one connection per camera")
        else:
            await self._open(principal, path.camera_id, path.purpose, path.incident)
        self._uri = request.uri.split("?", 1)[0]
        assert self.grant is not None
        keyframe = next((f for f in self._server.hub.get(
            self.grant.camera_id, self.grant.profile).gop_snapshot() if f.keyframe), None)
        if keyframe is not None and keyframe.codec != "h264":
            raise RtspError(415, f"camera {self.grant.camera_id} sends {keyframe.codec}; "
                                 "only H.264 is re-published")
        host = self._writer.get_extra_info("sockname")
        address = str(host[0]) if isinstance(host, tuple) and host else "127.0.0.1"
        return sdp(keyframe, self.grant.camera_id, address)

    async def _open(self, principal: Principal, camera_id: str, purpose: str,
                    incident: str) -> None:
        gate = self._server.gate
        hub = self._server.hub
        profiles = hub.profiles(camera_id)
        wanted = self._settings.profile
        profile = wanted if wanted in profiles or not profiles else "main"
        try:
            grant = await gate.open_view(principal, camera_id, profile,
                                         purpose or self._settings.purpose, incident, self.source)
        except ViewRefused as exc:
            raise RtspError(exc.status, exc.message) from None
        self.grant = grant
        try:
            stream = hub.get(camera_id, profile)
            gop = len(stream.gop_snapshot())
            self.subscription = await stream.subscribe(
                f"rtsp:{principal.username[:16]}:{secrets.token_hex(3)}",
                maxsize=stream.settings.subscriber_queue + gop, wait=True)
        except (CameraNotFound, ProfileNotFound) as exc:
            await self.end(str(exc))
            raise RtspError(404, str(exc)) from None
        except (SourceUnavailable, StreamClosed) as exc:
            await self.end(str(exc))
            raise RtspError(503, f"camera {camera_id} is not streaming now: {exc}") from None
        gate.attach(grant, self.end)
        log.info("VMS client %s (%s) opened camera %s/%s as view %s", self.source,
                 principal.username, camera_id, profile, grant.view_id)

    async def _setup(self, request: RtspRequest) -> dict[str, str]:
        if self.grant is None:
            raise RtspError(455, "DESCRIBE the camera before SETUP")
        path = media_path(request.uri)
        if path.camera_id != self.grant.camera_id or path.track not in (None, 0):
            raise RtspError(404, "this session's only track is trackID=0 of camera "
                                 f"{self.grant.camera_id}")
        if self.rtp is not None:
            raise RtspError(459, "the stream's one track is already set up")
        choice = choose_transport(request.header("transport"), udp=self._settings.udp)
        ssrc_rtp = RtpWriter(choice.interleaved[0] if choice.interleaved else 0)
        if choice.interleaved is not None:
            low, high = choice.interleaved
            transport = f"RTP/AVP/TCP;unicast;interleaved={low}-{high}"
        else:
            assert choice.client_ports is not None
            server_ports = await self._open_udp(choice.client_ports)
            transport = (f"RTP/AVP;unicast;client_port={choice.client_ports[0]}-"
                         f"{choice.client_ports[1]};server_port={server_ports[0]}-"
                         f"{server_ports[1]}")
        self.rtp = ssrc_rtp
        self.session_id = secrets.token_hex(8)
        return {"Transport": f"{transport};ssrc={self.rtp.ssrc:08X}", **self._session_header()}

    async def _open_udp(self, client_ports: tuple[int, int]) -> tuple[int, int]:
        """An RTP and an RTCP socket on the address the VMS connected to, sending only to the
        VMS's own address (never to a ``destination`` it names: no reflection)."""
        local = self._writer.get_extra_info("sockname")
        host = str(local[0]) if isinstance(local, tuple) and local else self._settings.host
        loop = asyncio.get_running_loop()
        ports: list[int] = []
        for remote_port in client_ports:
            transport, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=(host, 0),
                remote_addr=(self.source, remote_port))
            self._udp.append(transport)
            ports.append(int(transport.get_extra_info("sockname")[1]))
        return ports[0], ports[1]

    def _session_header(self) -> dict[str, str]:
        if not self.session_id:
            return {}
        return {"Session": f"{self.session_id};timeout={SESSION_TIMEOUT}"}

    def _play(self, request: RtspRequest) -> dict[str, str]:
        if self.rtp is None or self.subscription is None:
            raise RtspError(455, "SETUP the track before PLAY")
        session = (request.header("session") or "").split(";", 1)[0].strip()
        if session != self.session_id:
            raise RtspError(454, "no such session on this connection")
        if self._pump is not None:
            return {**self._session_header(), "Range": "npt=now-"}
        return {**self._session_header(), "Range": "npt=now-",
                "RTP-Info": f"url={self._uri.rstrip('/')}/trackID=0;"
                            f"seq={self.rtp.next_sequence}"}

    def _start_pump(self) -> None:
        if self._pump is not None or self.grant is None:
            return
        self._pump = asyncio.get_running_loop().create_task(
            self._send_frames(), name=f"rtsp-out:{self.grant.camera_id}:{self.grant.view_id}")

    async def _send_frames(self) -> None:
        subscription, rtp = self.subscription, self.rtp
        assert subscription is not None
        assert rtp is not None
        transport = self._writer.transport
        reason = ""
        try:
            while True:
                frame = await subscription.get()
                if self._writer.is_closing():
                    reason = "the VMS closed the connection"
                    break
                if self._udp:
                    self._send_datagrams(rtp, frame)
                    continue
                self._writer.write(rtp.interleaved(frame))
                if transport.get_write_buffer_size() > self._settings.write_buffer_bytes:
                    async with asyncio.timeout(self._settings.write_timeout):
                        await self._writer.drain()
        except StreamClosed:
            reason = subscription.close_reason or "the camera's stream closed"
        except TimeoutError:
            reason = (f"the VMS did not read its stream for {self._settings.write_timeout:g} s")
        except ConnectionError:
            reason = "the VMS closed the connection"
        self._pump = None  # end() must not cancel the task it runs in
        await self.end(reason)

    def _send_datagrams(self, rtp: RtpWriter, frame: EncodedFrame) -> None:
        """UDP never waits: while the socket's buffer is over its limit frames are dropped, up
        to the next keyframe (a decoder cannot use what follows a hole before one)."""
        udp = self._udp[0]
        # asyncio's datagram transport buffers what the socket refuses (a WriteTransport)
        buffered = udp.get_write_buffer_size() if isinstance(udp, asyncio.WriteTransport) else 0
        if buffered > self._settings.write_buffer_bytes or (
                self._skipping and not frame.keyframe):
            self._skipping = True
            self.dropped_frames += 1
            return
        self._skipping = False
        for packet in rtp.packets(frame):
            udp.sendto(packet)

    async def end(self, reason: str) -> None:
        """End the view (idempotent): frames stop, the connection closes, ``view.stop`` is
        audited with ``reason``."""
        if self.ended:
            return
        self.ended = True
        self.end_reason = reason
        if self.subscription is not None:
            self.subscription.close(reason)
        pump, self._pump = self._pump, None
        if pump is not None and pump is not asyncio.current_task():
            pump.cancel()
            await asyncio.wait([pump])  # the pump's cancellation, not ours, ends here
        self._writer.close()
        for udp in self._udp:
            udp.close()
        if self.grant is not None:
            log.info("VMS client %s (%s): view %s of camera %s ended: %s", self.source,
                     self.grant.user, self.grant.view_id, self.grant.camera_id, reason)
            await self._server.gate.close_view(self.grant, reason)
