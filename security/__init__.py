"""Accounts, roles, sessions, consent on every media path, and the tamper-evident audit log.

Wiring (``server.app.create_app``): ``security_middleware`` (headers come from
``server.security_headers.security_headers_on_prepare``),
``security_context`` in ``cleanup_ctx``, ``add_routes(app)``. Other domains use only the
contracts the context publishes (``rtcc.access``, ``rtcc.appkeys``): media paths
``MEDIA_ACCESS``, the owner portal ``CONSENT_CHANGES``, everyone the ``AUDIT`` sink.
"""

from __future__ import annotations

from security.context import security_context
from security.core import SECURITY, SecurityCore, security_core
from security.middleware import security_middleware
from security.routes import add_routes

__all__ = [
    "SECURITY",
    "SecurityCore",
    "add_routes",
    "security_context",
    "security_core",
    "security_middleware",
]
