"""Every way video comes in: RTSP pull (PyAV), the H.264 bitstream tools, the camera simulator."""
