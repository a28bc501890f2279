"""Starting the facilities store and the panic service inside the application."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from facilities import routes
from facilities.keys import LIMITS, PANIC
from facilities.service import PanicLimits, PanicService
from facilities.store import FacilityStore
from rtcc.appkeys import CLOCK, DATABASE

log = logging.getLogger(__name__)


async def facilities_context(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: the store on the data layer and the service over it."""
    store = FacilityStore(app[DATABASE], lambda: app.get(CLOCK, time.time)())
    await store.open()
    service = PanicService(store, app.get(LIMITS, PanicLimits()))
    app[PANIC] = service
    try:
        yield
    finally:
        service.close_feeds()
        await store.aclose()


def add_routes(app: web.Application) -> None:
    routes.add_routes(app)
