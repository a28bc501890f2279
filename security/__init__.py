"""Accounts, roles, sessions, consent on every media path, and the tamper-evident audit log.

Wiring (``server.app.create_app``): ``security_middleware`` (headers come from
``server.security_headers.security_headers_on_prepare``),
``security_context`` in ``cleanup_ctx``, ``add_routes(app)``. Media paths use
``app[rtcc.appkeys.MEDIA_ACCESS]``; the owner portal reports consent changes with
``consent_changed(request, before, after)``, which ends the camera's open sessions.
"""

from __future__ import annotations

from aiohttp import web

from rtcc.access import CameraConsent
from rtcc.appkeys import HUB
from security.context import SecurityCore, security_context
from security.media_access import record_consent_change
from security.middleware import security_middleware
from security.principal import Principal, client_address, principal_of, security_core
from security.routes import add_routes
from security.urls import SafeUrl, check_camera_url


async def consent_changed(
    request: web.Request, before: CameraConsent | None, after: CameraConsent
) -> int:
    """Audit an owner's consent change and end the camera's open sessions; returns how many."""
    principal = principal_of(request)
    return record_consent_change(
        security_core(request), request.config_dict.get(HUB),
        principal.username if principal else "system",
        str(principal.role) if principal else "", client_address(request), before, after,
    )


__all__ = [
    "Principal",
    "SafeUrl",
    "SecurityCore",
    "add_routes",
    "check_camera_url",
    "consent_changed",
    "principal_of",
    "security_context",
    "security_middleware",
]
