"""Prometheus text exposition of the hub's statistics."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

_STREAM_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("frames", "rtcc_stream_frames_total", "Frames received from the camera"),
    ("bytes", "rtcc_stream_bytes_total", "Encoded bytes received from the camera"),
    ("keyframes", "rtcc_stream_keyframes_total", "Keyframes received from the camera"),
    ("starts", "rtcc_stream_starts_total", "Times the source was started"),
    ("last_frame_age", "rtcc_stream_last_frame_age_seconds", "Seconds since the last frame"),
    ("gop_cache_bytes", "rtcc_stream_gop_cache_bytes", "Bytes held in the GOP cache"),
)
_SUB_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("frames", "rtcc_subscriber_frames_total", "Frames delivered to the subscriber"),
    ("bytes", "rtcc_subscriber_bytes_total", "Bytes delivered to the subscriber"),
    ("drops", "rtcc_subscriber_dropped_frames_total", "Frames dropped for a slow subscriber"),
    ("queued", "rtcc_subscriber_queued_frames", "Frames waiting in the subscriber queue"),
)
_STATES = ("idle", "starting", "live", "reconnecting", "error")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Mapping[str, str]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


def render(streams: Iterable[Mapping[str, object]]) -> str:
    """Prometheus text format (version 0.0.4) for the given stream stats."""
    streams = list(streams)
    out: list[str] = []

    def family(name: str, help_text: str, kind: str) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")

    family("rtcc_stream_state", "1 for the stream's current state", "gauge")
    for stream in streams:
        base = {"camera": str(stream["camera_id"]), "profile": str(stream["profile"])}
        for state in _STATES:
            flag = 1 if stream["state"] == state else 0
            out.append(f"rtcc_stream_state{_labels({**base, 'state': state})} {flag}")
    family("rtcc_stream_subscribers", "Current subscribers of the stream", "gauge")
    for stream in streams:
        base = {"camera": str(stream["camera_id"]), "profile": str(stream["profile"])}
        subs = stream.get("subscribers")
        count = len(subs) if isinstance(subs, list) else 0
        out.append(f"rtcc_stream_subscribers{_labels(base)} {count}")
    for key, name, help_text in _STREAM_GAUGES:
        family(name, help_text, "counter" if name.endswith("_total") else "gauge")
        for stream in streams:
            value = _number(stream.get(key))
            if value is None:
                continue
            base = {"camera": str(stream["camera_id"]), "profile": str(stream["profile"])}
            out.append(f"{name}{_labels(base)} {value:g}")
    for key, name, help_text in _SUB_GAUGES:
        family(name, help_text, "counter" if name.endswith("_total") else "gauge")
        for stream in streams:
            subs = stream.get("subscribers")
            if not isinstance(subs, list):
                continue
            for sub in subs:
                value = _number(sub.get(key)) if isinstance(sub, dict) else None
                if value is None:
                    continue
                labels = {
                    "camera": str(stream["camera_id"]),
                    "profile": str(stream["profile"]),
                    "subscriber": str(sub.get("name", "")),
                }
                out.append(f"{name}{_labels(labels)} {value:g}")
    return "\n".join(out) + "\n"
