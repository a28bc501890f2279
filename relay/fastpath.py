"""The relay's compiled inner loops (``relay/_fastpath.c``), when they were built.

``pip install -e .`` builds them where a C compiler and Python's headers are present (Debian:
``gcc`` and ``python3-dev``); where they are not, the package installs without them and each
name here is None: the relay then does the same work in Python, with the same bytes on the
wire (``tests/relay/test_fastpath.py`` compares them).

* ``SEND_FRAME`` (per viewer and frame): for each run of the frame's packets, writes each RTP
  header, copies the payload after it, protects the packet in place with pylibsrtp's own
  ``srtp_protect`` (its address and the session's context are handed in: libsrtp is not linked
  twice), lays the packets out back to back in the send buffer and sends them with one
  segmented ``sendmsg`` on the viewer's socket. ``BATCH_PROTECT`` does the same but the send,
  for an address ``SEND_FRAME`` cannot take (see ``DatagramWriter.packed_address``). The
  Python loop (``relay.packets.FrameLayout``) costs about a microsecond more per packet, a few
  more per batch, and a copy of each frame per stream.
* ``SPLIT_ANNEXB`` and ``FRAGMENT`` (per stream and frame): the packetizer's two loops over the
  frame's bytes (``rtcc.bitstream.split_annexb`` and ``relay.packets._fragment``); in Python,
  ``bytes.find`` alone costs about 2 ns per byte of video.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Protocol


class BatchProtect(Protocol):
    def __call__(self, buffer: bytearray, payloads: tuple[bytes, ...], start: int, end: int,
                 last: int, header: bytes, seq: int, protect: int, context: int, /,
                 ) -> tuple[int, int]:
        """Write and protect ``payloads[start:end]`` (sequence numbers from ``seq``, the marker
        bit on index ``last``) into ``buffer``; returns (bytes written, first datagram's size).
        Raises ConnectionError when libsrtp refuses a packet."""


class SendFrame(Protocol):
    def __call__(self, fd: int, address: bytes, buffer: bytearray, payloads: tuple[bytes, ...],
                 batches: tuple[tuple[int, int], ...], last: int, header: bytes, seq: int,
                 protect: int, context: int, gso: bool, /) -> tuple[int, int, int]:
        """Write, protect and send a frame's packets to ``address`` (a packed ``sockaddr``) on
        socket ``fd``, each batch with one segmented ``sendmsg`` (``gso``) or one ``sendto`` per
        datagram; returns (datagrams dropped, system calls, errno of a refused segmentation
        offload or 0). Raises ConnectionError when libsrtp refuses a packet."""


class Fragment(Protocol):
    def __call__(self, nal: bytes, max_payload: int, prefix: bytes, kind: int,
                 nal_header: int, /) -> list[bytes]:
        """The fragmentation units of ``nal`` (see ``relay.packets._fragment``)."""


BATCH_PROTECT: BatchProtect | None = None
SEND_FRAME: SendFrame | None = None
SPLIT_ANNEXB: Callable[[bytes], list[bytes]] | None = None
FRAGMENT: Fragment | None = None

try:
    # Imported by name: the import-linter sees no module file for a compiled extension and
    # would count a static import as one of the whole ``relay`` package.
    _fastpath = importlib.import_module("relay._fastpath")
except ImportError:
    pass
else:
    BATCH_PROTECT = _fastpath.protect_batch
    SEND_FRAME = _fastpath.send_frame
    SPLIT_ANNEXB = _fastpath.split_annexb
    FRAGMENT = _fastpath.fragment
