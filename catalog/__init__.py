"""The camera catalog: cameras, owners, sites and consent on the map; geographic search over a
SQLite (embedded) or Redis (scale-out) store; live camera status pushed to consoles.

Wiring (in ``server/app.py``), after the hub's and the security module's contexts::

    app.cleanup_ctx.append(catalog_context)       # CATALOG_STORE, CAMERA_DIRECTORY
    app.cleanup_ctx.append(live_status_context)   # status from the hub, /api/events feed
    add_routes(app)
"""

from catalog.api import add_routes
from catalog.context import catalog_context, open_store, seed_if_empty
from catalog.keys import CATALOG_EVENTS, CATALOG_STORE, LIVE_FEED
from catalog.live import live_status_context
from catalog.store import CatalogStore

__all__ = [
    "CATALOG_EVENTS",
    "CATALOG_STORE",
    "LIVE_FEED",
    "CatalogStore",
    "add_routes",
    "catalog_context",
    "live_status_context",
    "open_store",
    "seed_if_empty",
]
