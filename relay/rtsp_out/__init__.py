"""Re-publishing granted cameras over RTSP to the department's VMS (Milestone, Genetec...).

``rtsp://HOST:PORT/cameras/{camera_id}``, H.264 passed through as RTP (RFC 6184) over interleaved
TCP, one audited view per connection, ended as soon as it is no longer allowed. The composition
root supplies the gate to security (``RtspGate``).
"""

from relay.rtsp_out.server import RtspGate, RtspOutServer, RtspOutSettings, ViewRefused

__all__ = ["RtspGate", "RtspOutServer", "RtspOutSettings", "ViewRefused"]
