"""Splitting the bytes of an RTSP connection into responses and interleaved RTP/RTCP frames.

RFC 2326 10.12: after PLAY the camera sends ``$``, a channel byte, a 16-bit length and that many
bytes of RTP or RTCP, mixed with RTSP messages (keep-alive answers, the camera's own requests).
The buffer is walked by index; frame payloads are handed over as memoryview slices valid only
during the callback, so a busy camera costs one Python step per frame, not per byte.
"""

from __future__ import annotations

from collections.abc import Callable

from ingest.rtsp_messages import Message, ProtocolViolation, take_message
from ingest.rtsp_native.errors import RtspProtocolError

MAX_BUFFER = 4 * 1_048_576
"""Bytes held while waiting for the rest of a message; more means the peer is not a camera."""

FrameHandler = Callable[[int, memoryview], None]
MessageHandler = Callable[[Message], None]


class InterleavedParser:
    """Feed bytes with ``feed``; complete frames go to ``on_frame(channel, payload)`` and
    complete RTSP messages to ``on_message``. Raises RtspProtocolError on anything else."""

    __slots__ = ("_buffer", "_on_frame", "_on_message", "_route", "_routed")

    def __init__(self, on_frame: FrameHandler, on_message: MessageHandler) -> None:
        self._buffer = bytearray()
        self._on_frame = on_frame
        self._on_message = on_message
        self._routed = -1
        self._route: Callable[[memoryview], None] | None = None

    def route(self, channel: int, handler: Callable[[memoryview], None]) -> None:
        """Frames on ``channel`` go straight to ``handler(payload)`` (the video RTP)."""
        self._routed = channel
        self._route = handler

    @property
    def pending(self) -> int:
        """Bytes held for an incomplete frame or message."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        buffer = self._buffer
        buffer += data
        size = len(buffer)
        pos = 0
        on_frame = self._on_frame
        routed, route = self._routed, self._route
        with memoryview(buffer) as view:
            while pos < size:
                if buffer[pos] == 0x24:  # '$'
                    if size - pos < 4:
                        break
                    end = pos + 4 + ((buffer[pos + 2] << 8) | buffer[pos + 3])
                    if end > size:
                        break
                    channel = buffer[pos + 1]
                    if channel == routed and route is not None:
                        route(view[pos + 4:end])
                    else:
                        on_frame(channel, view[pos + 4:end])
                    pos = end
                    continue
                if buffer[pos] in (0x0D, 0x0A):  # a blank line between messages
                    pos += 1
                    continue
                used = self._message(view[pos:])
                if not used:
                    break
                pos += used
        if pos:
            del buffer[:pos]
        if len(buffer) > MAX_BUFFER:
            raise RtspProtocolError("an RTSP message or frame larger than 4 MiB")

    def _message(self, rest: memoryview) -> int:
        """Parse one RTSP message at the start of ``rest``; the bytes it took (0: incomplete)."""
        pending = bytearray(rest)
        try:
            message = take_message(pending)
        except ProtocolViolation as exc:
            raise RtspProtocolError(str(exc)) from None
        if message is None:
            return 0
        self._on_message(message)
        return len(rest) - len(pending)
