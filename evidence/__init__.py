"""Evidence: recording, footage requests to owners, uploads from agents, signed clip exports.

Originals are kept as the camera's encoded bytes in segments hashed as they are written
(``recorder``, ``segments``, ``store``); owners approve or decline investigators' footage
requests (``requests``) and their agents upload the approved ranges, hashes checked on arrival
(``uploads``); an export is a derivative (an MP4 remuxed without re-encoding, an optional
watermarked copy) with a manifest of its sources signed with the server's Ed25519 key
(``export``, ``manifest``, ``signing``), which ``rtcc verify`` checks (``verify``). Every
export, download, verification, decision, upload, hold and eviction is in the audit log.

Wiring (``server.app.create_app``): ``app.cleanup_ctx.append(evidence_context)`` after the
security and hub contexts, and ``add_routes(app)``. Command line: ``export_main``,
``verify_main``.
"""

from __future__ import annotations

from aiohttp import web

from evidence import export_routes, investigate_routes, request_routes, upload_routes
from evidence.cli import export_main, verify_main
from evidence.context import EVIDENCE, EvidenceCore, evidence_context


def add_routes(app: web.Application) -> None:
    request_routes.add_routes(app)
    upload_routes.add_routes(app)
    export_routes.add_routes(app)
    investigate_routes.add_routes(app)


__all__ = [
    "EVIDENCE",
    "EvidenceCore",
    "add_routes",
    "evidence_context",
    "export_main",
    "verify_main",
]
