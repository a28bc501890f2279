"""A native asyncio RTSP client: RTSP/1.0 over TCP with interleaved RTP, H.264/H.265 passthrough.

All cameras of a process share the event loop (no thread per camera). ``NativeRtspSource`` feeds
the same ``Normalizer`` and stream hub as the FFmpeg reader in ``ingest.rtsp``; what it does not
handle (rtsps, UDP, redirects, codecs other than H.264/H.265) raises ``Unsupported`` so that
``ingest.rtsp.RtspSource`` falls back to the FFmpeg reader.
"""

from ingest.rtsp_native.errors import RtspProtocolError, Unsupported

__all__ = ["RtspProtocolError", "Unsupported"]
