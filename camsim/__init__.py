"""Simulated RTSP cameras (GStreamer gst-rtsp-server) for tests, benchmarks and the demo."""
