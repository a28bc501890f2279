"""Starting the facilities store and the panic service inside the application."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from facilities import routes
from facilities.forward import CadForwarder
from facilities.keys import FORWARDER, LIMITS, PANIC
from facilities.service import PanicLimits, PanicService
from facilities.store import FacilityStore
from rtcc.appkeys import CLOCK, DATABASE, SETTINGS
from rtcc.tasks import TaskSupervisor

log = logging.getLogger(__name__)


async def facilities_context(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: the store on the data layer, the service over it and the worker that
    forwards alerts to the configured CAD endpoints."""
    settings = app[SETTINGS]
    config = settings.facilities
    store = FacilityStore(app[DATABASE], lambda: app.get(CLOCK, time.time)())
    await store.open()
    limits = app.get(LIMITS) or PanicLimits(
        flood_alerts=config.flood_alerts, flood_window_s=config.flood_window_seconds,
        enrol_minutes=config.enrol_minutes)
    service = PanicService(store, limits)
    forwarder = CadForwarder(store, config,
                             tuple(settings.security.allow_private_camera_hosts))
    service.hooks.append(forwarder.on_step)
    app[PANIC] = service
    app[FORWARDER] = forwarder
    try:
        async with TaskSupervisor("facilities") as tasks:
            tasks.start("facilities:cad-forward", forwarder.run)
            yield
    finally:
        service.close_feeds()
        await store.aclose()


def add_routes(app: web.Application) -> None:
    routes.add_routes(app)
