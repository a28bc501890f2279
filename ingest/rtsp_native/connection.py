"""One RTSP connection on the event loop: requests and their answers, interleaved frames.

Reads are batched once the stream plays: after each read the transport pauses for
``READ_BATCH`` seconds, so one wakeup takes every packet the kernel gathered (a camera sends
hundreds of small packets a second; waking the loop for each would cost more than the rest of
the ingest together).
"""

from __future__ import annotations

import asyncio
import time

from ingest.rtsp_messages import Message
from ingest.rtsp_native.depacketize import Depacketizer
from ingest.rtsp_native.errors import RtspProtocolError
from ingest.rtsp_native.interleave import InterleavedParser

USER_AGENT = "rtcc-ingest"
READ_BATCH = 0.02
"""Seconds a playing connection waits between reads (adds at most this much latency)."""


class RtspConnection(asyncio.Protocol):
    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._parser = InterleavedParser(self._frame, self._message)
        self._transport: asyncio.Transport | None = None
        self._pending: dict[int, asyncio.Future[Message]] = {}
        self._cseq = 0
        self._batch = False
        self._resume: asyncio.TimerHandle | None = None
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self.answered = False
        """Any RTSP message arrived: the peer speaks RTSP."""
        self.video_channel = -1
        self.depacketizer: Depacketizer | None = None
        self.packets = 0
        self.bytes = 0
        self.rtcp = 0
        self.last_progress = time.monotonic()
        """When video RTP last arrived (keep-alive answers and RTCP are not progress)."""

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        before = self.packets
        try:
            self._parser.feed(data)
        except RtspProtocolError as exc:
            self._end(exc)
            return
        if self.packets != before:
            self.last_progress = time.monotonic()
        transport = self._transport
        if self._batch and transport is not None and not transport.is_closing():
            transport.pause_reading()
            self._resume = self._loop.call_later(READ_BATCH, self._resume_reading)

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
        """From now on, frames on ``channel`` go to ``depacketizer`` and reads are batched."""
        self.video_channel = channel
        self.depacketizer = depacketizer
        self.last_progress = time.monotonic()
        self._batch = True

    def close(self) -> None:
        if self._resume is not None:
            self._resume.cancel()
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._resume is not None:
            self._resume.cancel()
        if self._transport is not None:
            self._transport.abort()

    # -- incoming -----------------------------------------------------------------------------

    def _resume_reading(self) -> None:
        self._resume = None
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading()

    def _frame(self, channel: int, payload: memoryview) -> None:
        if channel == self.video_channel:
            depacketizer = self.depacketizer
            if depacketizer is not None:
                self.packets += 1
                self.bytes += len(payload)
                depacketizer.push(payload)
        elif channel == self.video_channel + 1:
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
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
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
        if exc is not None and self._transport is not None:
            self._transport.abort()
