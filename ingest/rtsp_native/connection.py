"""One RTSP connection on the event loop: requests and their answers, interleaved frames.

Until PLAY the connection is an ordinary asyncio protocol. Once the stream plays, the
transport stops reading and the connection joins the loop's ``_Poller``: one timer, every
``READ_BATCH`` seconds, reads whatever the kernel gathered on every playing connection
(non-blocking ``recv_into`` until the socket is drained). A camera sends hundreds of small
packets a second; waking the loop (and re-arming epoll) for each would cost more than the rest
of the ingest together, and one timer for all cameras costs one wakeup per period in total.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time

from ingest.rtsp_messages import Message
from ingest.rtsp_native.depacketize import Depacketizer
from ingest.rtsp_native.errors import RtspProtocolError
from ingest.rtsp_native.interleave import InterleavedParser

USER_AGENT = "rtcc-ingest"
READ_BATCH = 0.04
"""Seconds between reads of playing connections: at 25-30 fps about one whole frame per camera
per read. Adds at most this much latency (20 ms on average); halving it costs about half as
much CPU again per camera."""
READ_SIZE = 262_144


class _Poller:
    """Reads every playing connection of one event loop on one timer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._connections: dict[RtspConnection, None] = {}
        self._timer: asyncio.TimerHandle | None = None
        self.buffer = bytearray(READ_SIZE)
        self.view = memoryview(self.buffer)

    def add(self, connection: RtspConnection) -> None:
        self._connections[connection] = None
        if self._timer is None:
            self._timer = self._loop.call_later(READ_BATCH, self._tick)

    def remove(self, connection: RtspConnection) -> None:
        self._connections.pop(connection, None)
        if not self._connections and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self._timer = self._loop.call_later(READ_BATCH, self._tick)
        for connection in list(self._connections):
            connection.poll(self.buffer, self.view)


_pollers: dict[asyncio.AbstractEventLoop, _Poller] = {}


def _poller(loop: asyncio.AbstractEventLoop) -> _Poller:
    poller = _pollers.get(loop)
    if poller is None:
        for old in [each for each in _pollers if each.is_closed()]:
            del _pollers[old]
        poller = _pollers[loop] = _Poller(loop)
    return poller


class RtspConnection(asyncio.Protocol):
    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._parser = InterleavedParser(self._frame, self._message)
        self._transport: asyncio.Transport | None = None
        self._pending: dict[int, asyncio.Future[Message]] = {}
        self._cseq = 0
        self._sock: socket.socket | None = None
        """A duplicate of the transport's socket, read by the poller while playing."""
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self.answered = False
        """Any RTSP message arrived: the peer speaks RTSP."""
        self.video_channel = -1
        self.depacketizer: Depacketizer | None = None
        self.rtcp = 0
        self.last_progress = time.monotonic()
        """When video RTP last arrived (keep-alive answers and RTCP are not progress)."""

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._feed(data)

    @property
    def packets(self) -> int:
        """Video RTP packets received."""
        return self.depacketizer.packets if self.depacketizer is not None else 0

    @property
    def received_bytes(self) -> int:
        return self.depacketizer.bytes if self.depacketizer is not None else 0

    def _feed(self, data: bytes | memoryview) -> None:
        before = self.packets
        try:
            self._parser.feed(data)
        except RtspProtocolError as exc:
            self._end(exc)
            return
        if self.packets != before:
            self.last_progress = time.monotonic()

    def poll(self, buffer: bytearray, view: memoryview) -> None:
        """Read what the kernel holds (called by the poller while playing)."""
        sock = self._sock
        while sock is not None:
            try:
                size = sock.recv_into(buffer)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._end(exc)
                return
            if not size:
                self._end(None)
                return
            self._feed(view[:size])
            if size < len(buffer):
                return
            sock = self._sock

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(exc)

    def eof_received(self) -> bool | None:
        return None  # close

    # -- requests -----------------------------------------------------------------------------

    def send(self, method: str, url: str, headers: list[tuple[str, str]]
             ) -> asyncio.Future[Message]:
        """Send a request; the future gets its answer (or the connection's end as an error)."""
        transport = self._transport
        future: asyncio.Future[Message] = self._loop.create_future()
        if transport is None or transport.is_closing() or self.closed.done():
            future.set_exception(ConnectionResetError("the RTSP connection is closed"))
            return future
        self._cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self._cseq}", f"User-Agent: {USER_AGENT}"]
        lines += [f"{name}: {value}" for name, value in headers]
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        self._pending[self._cseq] = future
        return future

    def forget(self, future: asyncio.Future[Message]) -> None:
        """Stop waiting for an answer nobody needs (a keep-alive's)."""
        for cseq, pending in list(self._pending.items()):
            if pending is future:
                del self._pending[cseq]

    def play(self, channel: int, depacketizer: Depacketizer) -> None:
        """From now on, frames on ``channel`` go to ``depacketizer`` and the poller reads."""
        self.video_channel = channel
        self.depacketizer = depacketizer
        self._parser.route(channel, depacketizer.push)
        self.last_progress = time.monotonic()
        transport = self._transport
        if transport is None or transport.is_closing() or self._sock is not None:
            return
        raw = transport.get_extra_info("socket")
        if raw is None:
            return  # not a socket transport: keep reading through the protocol
        transport.pause_reading()
        sock = socket.socket(fileno=os.dup(raw.fileno()))
        sock.setblocking(False)
        self._sock = sock
        _poller(self._loop).add(self)

    def _unpoll(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            _poller(self._loop).remove(self)
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        self._unpoll()
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        self._unpoll()
        if self._transport is not None:
            self._transport.abort()

    # -- incoming -----------------------------------------------------------------------------

    def _frame(self, channel: int, _payload: memoryview) -> None:
        """Frames on other channels than the video RTP (which the parser routes)."""
        if channel == self.video_channel + 1:
            self.rtcp += 1  # sender reports: nothing here needs them

    def _message(self, message: Message) -> None:
        self.answered = True
        if not message.is_response:
            self._answer(message)
            return
        cseq = message.header("CSeq")
        if cseq is None or not cseq.isascii() or not cseq.strip().isdigit():
            return
        future = self._pending.pop(int(cseq), None)
        if future is not None and not future.done():
            future.set_result(message)

    def _answer(self, request: Message) -> None:
        """A request from the camera (some send GET_PARAMETER or OPTIONS as their own
        keep-alive): answer it minimally so they do not close the session."""
        known = request.method.upper() in ("OPTIONS", "GET_PARAMETER", "SET_PARAMETER")
        status = "200 OK" if known else "501 Not Implemented"
        cseq = request.header("CSeq") or "0"
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(f"RTSP/1.0 {status}\r\nCSeq: {cseq}\r\n\r\n".encode("latin-1"))

    def _end(self, exc: BaseException | None) -> None:
        self._unpoll()
        error = exc if exc is not None else ConnectionResetError("the camera closed the connection")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
                future.exception()  # a forgotten keep-alive must not log "never retrieved"
        self._pending.clear()
        if not self.closed.done():
            if exc is None:
                self.closed.set_result(None)
            else:
                self.closed.set_exception(exc)
                self.closed.exception()
        if self._transport is not None:
            if exc is None:
                self._transport.close()
            else:
                self._transport.abort()
