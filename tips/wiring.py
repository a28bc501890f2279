"""Starting the tip line inside the application: its store, and its routes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from aiohttp import web

from rtcc.appkeys import CLOCK, SECRET_BOX, SETTINGS, WORKERS
from tips import public_routes, staff_routes
from tips.keys import TIP_LINE
from tips.media import TipLimits
from tips.service import FloodLimits, TipLine
from tips.store import TipStore

LIMITS = web.AppKey("tip_limits", TipLimits)
"""Optional: set before the app starts to change the file limits (tests use small ones)."""
FLOODS = web.AppKey("tip_floods", FloodLimits)
"""Optional: set before the app starts to change what one caller may send per window."""


async def tips_context(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: needs ``SECRET_BOX`` (the security core) and ``WORKERS``."""
    store = TipStore(app[SETTINGS].data_dir)
    await store.open()
    try:
        app[TIP_LINE] = TipLine(
            store=store, box=app[SECRET_BOX], workers=app[WORKERS],
            clock=app.get(CLOCK, time.time), limits=app.get(LIMITS, TipLimits()),
            floods=app.get(FLOODS, FloodLimits()))
        yield
    finally:
        await store.aclose()


def add_routes(app: web.Application) -> None:
    public_routes.add_routes(app)
    staff_routes.add_routes(app)
