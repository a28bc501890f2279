"""Typed application keys of the catalog package."""

from __future__ import annotations

from aiohttp import web

from catalog.events import Broadcaster, EventBus
from catalog.store import CatalogStore

CATALOG_STORE = web.AppKey[CatalogStore]("catalog_store")
"""The open catalog store (also published as ``rtcc.appkeys.CAMERA_DIRECTORY``)."""
CATALOG_EVENTS = web.AppKey[EventBus]("catalog_events")
"""Where catalog changes and camera status changes are published (in-process or Redis)."""
LIVE_FEED = web.AppKey[Broadcaster]("catalog_live_feed")
"""Fan-out of published events to this process's console connections."""
