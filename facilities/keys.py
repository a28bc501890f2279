"""The panic service's keys on the application, and the site lookup the server provides."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from facilities.forward import CadForwarder
from facilities.service import PanicLimits, PanicService


@dataclass(frozen=True, slots=True)
class SiteInfo:
    """A camera owner's registered site, as the catalog knows it."""

    id: str
    owner_id: str
    address: str
    lat: float | None
    lon: float | None


SiteLookup = Callable[[str], Awaitable[SiteInfo | None]]

PANIC = web.AppKey("panic_service", PanicService)
SITES = web.AppKey[SiteLookup]("facility_sites")
"""Set by the server: the catalog's site of an id (facilities do not read the catalog)."""
LIMITS = web.AppKey("panic_limits", PanicLimits)
FORWARDER = web.AppKey("panic_cad_forwarder", CadForwarder)
"""Optional: set before the app starts to override ``facilities`` flood and enrolment limits."""
