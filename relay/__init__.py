"""Every way live video goes out: WebRTC to browsers over WHEP, H.264 passed through untouched.

``add_routes(app)`` registers the WHEP endpoint (``/whep/{camera_id}``), the one-camera player
page (``/play/{camera_id}``) and the viewer statistics (``/api/relay/sessions``), with a session
registry owned by the application and closed on shutdown.
"""

from relay.sessions import SESSIONS, RelaySessions
from relay.settings import IceServer, RelaySettings
from relay.whep import add_routes

__all__ = ["SESSIONS", "IceServer", "RelaySessions", "RelaySettings", "add_routes"]
