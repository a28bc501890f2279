"""Every way live video goes out: WebRTC to browsers over WHEP, H.264 passed through untouched.

``add_routes(app)`` registers the WHEP endpoint (``/whep/{camera_id}``), the one-camera player
page (``/play/{camera_id}``), the viewer statistics (``/api/relay/sessions``) and the analyst
wall's standby connections (``/wall/links``, ``relay.wall_link``), with a session registry owned
by the application and closed on shutdown.
"""

from aiohttp import web

from relay import wall_link, whep
from relay.sessions import SESSIONS, RelaySessions
from relay.settings import IceServer, RelaySettings


def add_routes(app: web.Application, settings: RelaySettings | None = None) -> RelaySessions:
    """Register WHEP, the player page, the statistics and the wall links on ``app``."""
    registry = whep.add_routes(app, settings)
    wall_link.add_routes(app, registry)
    return registry


__all__ = ["SESSIONS", "IceServer", "RelaySessions", "RelaySettings", "add_routes"]
