"""Prometheus families of the subsystems beside the hub: relay, view enforcement, agents.

The hub's streams (ingest per camera) are rendered by ``rtcc.metrics``, the database by
``server.db_health``. Every name here is listed in ``docs/grafana-dashboard.json``'s panels.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from ingest.agentlink.service import AGENT_SERVICE
from relay.sessions import SESSIONS
from rtcc import __version__
from security.enforcement import ENFORCEMENT

_RELAY_TOTALS: tuple[tuple[str, str, str], ...] = (
    ("opened", "rtcc_relay_sessions_opened_total", "Live views opened on the relay"),
    ("ended", "rtcc_relay_sessions_ended_total", "Live views ended"),
    ("never_connected", "rtcc_relay_sessions_never_connected_total",
     "Live views whose viewer never connected"),
    ("refused_per_user", "rtcc_relay_sessions_refused_total",
     "Live views refused because the account held its share"),
)
_RELAY_STREAM: tuple[tuple[str, str, str], ...] = (
    ("viewers", "rtcc_relay_stream_viewers", "Viewers of the stream on the relay"),
    ("bytes", "rtcc_relay_stream_bytes", "RTP bytes sent to the stream's current viewers"),
    ("packets", "rtcc_relay_stream_packets", "RTP packets sent to the stream's current viewers"),
    ("retransmitted", "rtcc_relay_stream_retransmitted_packets",
     "Packets resent after a NACK to the stream's current viewers"),
    ("packets_dropped", "rtcc_relay_stream_dropped_packets",
     "Packets dropped for the stream's current viewers"),
    ("plis", "rtcc_relay_stream_plis", "Keyframe requests from the stream's current viewers"),
)


def _labels(labels: Mapping[str, str]) -> str:
    escaped = {k: v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               for k, v in labels.items()}
    return "{" + ",".join(f'{k}="{v}"' for k, v in escaped.items()) + "}"


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


class _Families:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, help_text: str) -> None:
        kind = "counter" if name.endswith("_total") else "gauge"
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]

    def one(self, name: str, help_text: str, value: float,
            labels: Mapping[str, str] | None = None) -> None:
        self.family(name, help_text)
        self.lines.append(f"{name}{_labels(labels) if labels else ''} {value:g}")


def render(app: web.Application) -> str:
    """The families of the subsystems this application runs (absent ones are left out)."""
    out = _Families()
    out.one("rtcc_build_info", "The server's version", 1, {"version": __version__})
    relay = app.get(SESSIONS)
    if relay is not None:
        stats = relay.stats()
        out.one("rtcc_relay_viewers", "Live views open on the relay", _number(stats["viewers"]))
        out.one("rtcc_relay_max_sessions", "Most live views the relay accepts",
                _number(stats["max_sessions"]))
        for key, name, help_text in _RELAY_TOTALS:
            out.one(name, help_text, _number(stats.get(key)))
        streams = stats["streams"] if isinstance(stats["streams"], list) else []
        for key, name, help_text in _RELAY_STREAM:
            out.family(name, help_text)
            for stream in streams:
                labels = {"camera": str(stream["camera_id"]), "profile": str(stream["profile"])}
                out.lines.append(f"{name}{_labels(labels)} {_number(stream.get(key)):g}")
    enforcement = app.get(ENFORCEMENT)
    if enforcement is not None:
        views = enforcement.stats()
        out.one("rtcc_grants_open_views", "Live views open under a grant, checked continuously",
                _number(views["open_views"]))
        out.one("rtcc_grants_checks_total", "Checks of every open view against its grant",
                _number(views["checks"]))
        out.one("rtcc_grants_views_ended_total",
                "Views ended because their grant or consent ended", _number(views["ended"]))
    agents = app.get(AGENT_SERVICE)
    if agents is not None:
        out.one("rtcc_agents_connected", "Owners' agents connected now",
                len(agents.registry.connected()))
    return "\n".join(out.lines) + "\n"


__all__ = ["render"]
