"""SRTP protection in place, in a buffer the caller reuses: no objects made per packet.

aiortc keeps one ``pylibsrtp.Session`` per direction of a DTLS transport. Its ``protect(bytes)``
checks its argument, allocates a length cell, copies the packet into the session's own buffer,
calls libsrtp, and copies the result out into a new ``bytes``: about 1.5 µs of Python per packet
on top of the cipher. ``InPlaceProtector`` calls the same libsrtp function on the same session
context, but on a packet the relay has already written into its send buffer, where the
protected packet (with its tag) is then sent from directly.

This module knows libsrtp's C interface only. How to reach it from a session (the cffi binding,
the session's context) is handed in as a ``LibSrtp`` by ``relay.aiortc_adapter``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

SRTP_TRAILER_ROOM = 16 + 128
"""Bytes libsrtp may append to a packet (the largest tag plus the largest MKI)."""

PROTECT_SIGNATURE = "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"
"""libsrtp 2's ``srtp_protect`` as cffi spells it: the only one the compiled loop may call by
address (libsrtp 3 takes other arguments; calling it so would corrupt memory)."""


class SrtpSession(Protocol):
    """One direction's SRTP keys, as a session object that protects whole packets."""

    def protect(self, packet: bytes) -> bytes: ...

    def protect_rtcp(self, packet: bytes) -> bytes: ...


class LibSrtp(NamedTuple):
    """libsrtp's functions (cffi ``ffi`` and ``lib``) and how to find a session's context."""

    ffi: Any
    lib: Any
    context_of: Callable[[SrtpSession], Any]
    """The session's ``srtp_t``, or None when it has none this binding can use."""


class RawProtect(NamedTuple):
    """What a sender's inner loop calls itself: ``protect(context, pointer + offset, cell)``."""

    protect: Any
    context: Any
    pointer: Any
    cell: Any
    protect_address: int
    """The address of ``srtp_protect`` (for the compiled loop, ``relay.fastpath``), 0 when
    this binding's ``srtp_protect`` is not libsrtp 2's (then it is called through cffi only)."""
    context_address: int
    """The address of the session's context: valid only while ``session`` lives (its context
    is freed with it), so whoever keeps the address keeps this tuple."""
    session: SrtpSession
    """The session that owns the context."""


class ScratchBuffer:
    """A send buffer that every sender of an application writes its packets into before the
    system call that sends them (sends are synchronous, so one buffer serves all viewers and
    stays in the processor's cache). Without ``libsrtp`` every packet is protected through its
    session's ``protect`` (one copy more)."""

    __slots__ = ("data", "libsrtp", "pointer", "view")

    def __init__(self, size: int, libsrtp: LibSrtp | None = None) -> None:
        self.data = bytearray(size)
        self.view = memoryview(self.data)
        self.libsrtp = libsrtp
        self.pointer: Any = libsrtp.ffi.from_buffer(self.data) if libsrtp is not None else None


class InPlaceProtector:
    """Protects the packet at ``buffer[offset:offset + length]`` where it lies."""

    __slots__ = ("_ctx", "_ffi", "_length", "_pointer", "_protect", "_session", "_view")

    def __init__(self, session: SrtpSession, buffer: ScratchBuffer) -> None:
        self._session = session
        self._view = buffer.view
        self._pointer = buffer.pointer
        libsrtp = buffer.libsrtp
        self._ffi: Any = libsrtp.ffi if libsrtp is not None else None
        self._ctx: Any = libsrtp.context_of(session) if libsrtp is not None else None
        self._length: Any = libsrtp.ffi.new("int *") if libsrtp is not None else None
        self._protect: Any = libsrtp.lib.srtp_protect if libsrtp is not None else None

    @property
    def session(self) -> SrtpSession:
        return self._session

    @property
    def direct(self) -> bool:
        """True when libsrtp is called on the buffer itself (no copies)."""
        return self._ctx is not None and self._pointer is not None

    def raw(self) -> RawProtect | None:
        """libsrtp's protect function, the session context, the buffer pointer and a length
        cell, for a sender's inner loop; None when packets must go through ``protect``."""
        if not self.direct:
            return None
        ffi = self._ffi
        abi_ok = ffi.typeof(self._protect).cname == PROTECT_SIGNATURE
        return RawProtect(self._protect, self._ctx, self._pointer, self._length,
                          int(ffi.cast("uintptr_t", self._protect)) if abi_ok else 0,
                          int(ffi.cast("uintptr_t", self._ctx)), self._session)

    def protect(self, offset: int, length: int) -> int:
        """Protect the RTP packet in place; returns its protected length."""
        if self._ctx is None or self._pointer is None:
            return self._protect_copy(offset, length)
        cell = self._length
        cell[0] = length
        status = self._protect(self._ctx, self._pointer + offset, cell)
        if status:
            raise ConnectionError(f"SRTP protection failed (libsrtp status {status})")
        protected: int = cell[0]
        return protected

    def _protect_copy(self, offset: int, length: int) -> int:
        view = self._view
        protected = self._session.protect(bytes(view[offset:offset + length]))
        end = offset + len(protected)
        view[offset:end] = protected
        return len(protected)
