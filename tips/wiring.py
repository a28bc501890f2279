"""Starting the tip line inside the application: its store, and its routes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from rtcc.appkeys import CLOCK, DATABASE, SECRET_BOX, SETTINGS, WORKERS
from rtcc.tasks import TaskSupervisor
from tips import public_routes, staff_routes
from tips.keys import TIP_LINE
from tips.media import TipLimits
from tips.service import FloodLimits, TipLine
from tips.store import TipStore

log = logging.getLogger(__name__)
EXPIRE_EVERY_S = 3600.0

LIMITS = web.AppKey("tip_limits", TipLimits)
"""Optional: set before the app starts to change the file limits (tests use small ones)."""
FLOODS = web.AppKey("tip_floods", FloodLimits)
"""Optional: set before the app starts to change what one caller may send per window."""


async def tips_context(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: needs ``SECRET_BOX`` (the security core) and ``WORKERS``."""
    store = TipStore(app[DATABASE], app[SETTINGS].data_dir)
    await store.open()
    tasks = TaskSupervisor("tips")
    try:
        line = TipLine(store=store, box=app[SECRET_BOX], workers=app[WORKERS],
                       clock=app.get(CLOCK, time.time), limits=app.get(LIMITS, TipLimits()),
                       floods=app.get(FLOODS, FloodLimits()))
        app[TIP_LINE] = line
        tasks.start("tips:expire-uploads", lambda: _expire_uploads(line))
        yield
    finally:
        await tasks.aclose()
        await store.aclose()


async def _expire_uploads(line: TipLine) -> None:
    """Hourly: uploads left unfinished past ``upload_hours`` are refused and deleted, so a
    flood of started uploads cannot hold the disk."""
    hours = line.limits.upload_hours
    while True:
        expired = await line.store.expire_uploads(
            line.clock() - hours * 3600,
            f"not finished within {hours:g} hours; send the file again")
        if expired:
            log.info("tips: deleted %d unfinished uploads", expired)
        await asyncio.sleep(EXPIRE_EVERY_S)


def add_routes(app: web.Application) -> None:
    public_routes.add_routes(app)
    staff_routes.add_routes(app)
