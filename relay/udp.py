"""Write a viewer's datagrams straight to its UDP socket, many per system call where possible.

On Linux, UDP generic segmentation offload (``UDP_SEGMENT``, since 4.18) sends a run of equal-size
datagrams, the last one possibly shorter, with one ``sendmsg``. The fragments of an H.264 frame
are such a run (the relay cuts NAL units into equal FU-A pieces), so a frame usually costs one
system call instead of one per packet. ``plan_batches`` finds those runs once per frame (all
viewers share them: a viewer adds the same header and tag length to every packet of a frame);
each viewer's sender writes a run's protected packets back to back into a buffer and
``send_segments`` hands that buffer to the kernel. Where the kernel refuses segmentation, the
writer falls back to one ``sendto`` per datagram for good.

The writer uses its own duplicate of the ICE candidate pair's socket descriptor: sending never
goes through asyncio's transport buffer (a datagram that cannot be sent now is dropped and
counted, never queued) and the descriptor is closed with the writer.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
import sys
from asyncio import DatagramTransport
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)

SOL_UDP = getattr(socket, "SOL_UDP", 17)
UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)
MAX_SEGMENTS = 48
MAX_BATCH_BYTES = 63_000
BATCH_OVERHEAD = 64
"""Bytes a viewer adds to an RTP payload at most: header, extensions, SRTP tag."""
_GSO_UNSUPPORTED = frozenset({errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP})


def plan_batches(sizes: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """Split payloads (by size, in order) into ``(start, end)`` runs that one segmented send
    can carry: equal sizes but the last, at most ``MAX_SEGMENTS`` datagrams and
    ``MAX_BATCH_BYTES`` bytes once each payload has grown by ``BATCH_OVERHEAD``."""
    batches = []
    start = 0
    count = len(sizes)
    while start < count:
        size = sizes[start]
        end = start + 1
        total = size + BATCH_OVERHEAD
        while (
            end < count
            and end - start < MAX_SEGMENTS
            and sizes[end - 1] == size
            and sizes[end] <= size
            and total + sizes[end] + BATCH_OVERHEAD <= MAX_BATCH_BYTES
        ):
            total += sizes[end] + BATCH_OVERHEAD
            end += 1
        batches.append((start, end))
        start = end
    return tuple(batches)


class DatagramWriter:
    def __init__(self, transport: DatagramTransport, gso: bool = True) -> None:
        trsock = transport.get_extra_info("socket")
        self._sock: socket.socket = trsock.dup()
        self._sock.setblocking(False)
        self.gso = gso and sys.platform == "linux"
        self.calls = 0
        self.dropped = 0
        self._segment_options: dict[int, list[tuple[int, int, bytes]]] = {}

    def close(self) -> None:
        self._sock.close()

    def fileno(self) -> int:
        return self._sock.fileno()

    def packed_address(self, addr: tuple[str, int]) -> bytes | None:
        """``addr`` as the socket's ``sockaddr`` (for a send made outside Python), None when it
        is not a plain IP address of the socket's family (it is then sent through Python)."""
        family = self._sock.family
        try:
            if family == socket.AF_INET:
                return (struct.pack("=H", family) + struct.pack("!H", addr[1])
                        + socket.inet_pton(family, addr[0]) + bytes(8))
            if family == socket.AF_INET6:
                flow = int(addr[2]) if len(addr) > 2 else 0
                scope = int(addr[3]) if len(addr) > 3 else 0
                return (struct.pack("=H", family) + struct.pack("!HI", addr[1], flow)
                        + socket.inet_pton(family, addr[0]) + struct.pack("=I", scope))
        except (OSError, ValueError, TypeError, struct.error):
            return None
        return None

    def segmentation_refused(self, error: int) -> None:
        """The kernel refused a segmented send made outside Python: one datagram per call from
        now on."""
        log.info("UDP segmentation offload unavailable (%s); sending one datagram per call",
                 os.strerror(error))
        self.gso = False

    def send_segments(
        self, data: memoryview, segment: int, count: int, addr: tuple[str, int]
    ) -> None:
        """Send ``data`` as ``count`` datagrams of ``segment`` bytes (the last may be shorter),
        with one system call when segmentation offload works; what the socket cannot take now
        is dropped and counted."""
        if count == 1:
            try:
                self._sock.sendto(data, addr)
            except OSError:  # BlockingIOError included: the socket buffer is full
                self.dropped += 1
            self.calls += 1
            return
        if self.gso:
            try:
                self._sock.sendmsg((data,), self.segment_options(segment), 0, addr)
                self.calls += 1
            except OSError as exc:
                self.segmented_send_failed(exc, data, segment, count, addr)
            return
        self._send_each([data[start:start + segment] for start in range(0, len(data), segment)],
                        addr)

    @property
    def sendmsg(self) -> Callable[..., int]:
        """The socket's ``sendmsg``, for a caller that makes segmented sends itself (with
        ``segment_options``) and reports failures to ``segmented_send_failed``."""
        return self._sock.sendmsg

    def segment_options(self, segment: int) -> list[tuple[int, int, bytes]]:
        options = self._segment_options.get(segment)
        if options is None:
            options = [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", segment))]
            self._segment_options[segment] = options
        return options

    def segmented_send_failed(self, exc: OSError, data: memoryview, segment: int, count: int,
                              addr: tuple[str, int]) -> None:
        if exc.errno not in _GSO_UNSUPPORTED:  # a full socket buffer, or the path is gone
            self.dropped += count
            return
        log.info("UDP segmentation offload unavailable (%s); sending one datagram per call",
                 exc.strerror)
        self.gso = False
        self._send_each([data[start:start + segment] for start in range(0, len(data), segment)],
                        addr)

    def send(self, datagrams: list[bytes], addr: tuple[str, int]) -> None:
        """Send now, in order; what the socket cannot take at once is dropped."""
        if not self.gso or len(datagrams) == 1:
            self._send_each(datagrams, addr)
            return
        start = 0
        count = len(datagrams)
        while start < count:
            size = len(datagrams[start])
            end = start + 1
            total = size
            while (
                end < count
                and end - start < MAX_SEGMENTS
                and total + size <= MAX_BATCH_BYTES
                and len(datagrams[end - 1]) == size
                and len(datagrams[end]) <= size
            ):
                total += len(datagrams[end])
                end += 1
            if end - start == 1:
                self._send_each(datagrams[start:end], addr)
            else:
                self._send_batch(datagrams[start:end], size, addr)
            start = end

    def _send_batch(self, run: list[bytes], size: int, addr: tuple[str, int]) -> None:
        try:
            self._sock.sendmsg([b"".join(run)], [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", size))],
                               0, addr)
            self.calls += 1
        except BlockingIOError:
            self.dropped += len(run)
        except OSError as exc:
            if exc.errno in _GSO_UNSUPPORTED:
                log.info("UDP segmentation offload unavailable (%s); sending one datagram "
                         "per call", exc.strerror)
                self.gso = False
                self._send_each(run, addr)
            else:
                self.dropped += len(run)

    def _send_each(self, datagrams: Sequence[bytes | memoryview], addr: tuple[str, int]) -> None:
        sendto = self._sock.sendto
        for index, datagram in enumerate(datagrams):
            try:
                sendto(datagram, addr)
            except BlockingIOError:
                self.dropped += len(datagrams) - index
                return
            except OSError:
                self.dropped += 1
        self.calls += len(datagrams)
