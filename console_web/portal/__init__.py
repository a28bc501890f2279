"""The camera owners' portal: public pages under ``/register/`` (what the program is, joining)
and the owner's own pages (cameras on a map, sharing, agents, footage requests, access log).

Wiring: ``console_web.portal.add_routes(app)``. The pages are files that hold no data; what
they show comes from the owner API (``/api/owner/...``, ``/api/access-log``, ``/api/agents``,
``/api/footage-requests``), which checks the owner on every call.
"""

from console_web.portal.routes import add_routes

__all__ = ["add_routes"]
