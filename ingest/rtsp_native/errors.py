"""The native RTSP client's own errors."""

from __future__ import annotations


class RtspProtocolError(Exception):
    """The camera sent something that is not RTSP or interleaved RTP; the message says what,
    without the bytes."""


class Unsupported(Exception):
    """The camera needs something the native client does not do (the message says what): the
    source falls back to the FFmpeg reader."""
