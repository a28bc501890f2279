"""Consent changes to cameras, whoever makes them (an owner, an administrator, a bulk import):
audited, and when viewers may now do less than before, their open sessions end at once."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from rtcc.access import CameraConsent
from rtcc.appkeys import AUDIT, CONSENT_CHANGES, HUB
from rtcc.config import SharingLevel
from rtcc.consent import consent_summary
from rtcc.errors import AuditWriteError
from rtcc.http import required
from rtcc.principal import client_address, require_principal

_LEVELS = tuple(SharingLevel)


async def audit(request: web.Request, action: str, *, owner_id: str, target: str = "",
                camera_id: str = "", details: dict[str, Any] | None = None) -> None:
    """Write an audit entry for the caller; refuse the change (503) if the log cannot be written."""
    principal = require_principal(request)
    try:
        await required(request, AUDIT, "the security core").append(
            actor=principal.username, role=str(principal.role), action=action, target=target,
            camera_id=camera_id, owner_id=owner_id, source=client_address(request),
            details=details)
    except AuditWriteError:
        raise web.HTTPServiceUnavailable(
            text='{"error": "the audit log cannot be written, so nothing was changed"}',
            content_type="application/json") from None


def narrows(before: CameraConsent | None, after: CameraConsent) -> bool:
    """Whether viewers may now do less than before (their sessions must be checked again)."""
    if before is None or before.owner_id != after.owner_id:  # a new owner has granted nothing
        return True
    if _LEVELS.index(after.sharing) < _LEVELS.index(before.sharing):
        return True
    if after.windows and (after.windows != before.windows or after.timezone != before.timezone):
        return True
    return before.ptz_allowed and not after.ptz_allowed


async def record_consent(request: web.Request, before: CameraConsent | None,
                         after: CameraConsent) -> int:
    """Audit the change; end the camera's sessions when it narrows consent. Sessions ended."""
    if before == after:
        return 0
    changes = request.config_dict.get(CONSENT_CHANGES)
    if changes is None:
        # The catalog served on its own, without accounts (its own tests): nobody to audit as,
        # but a narrowed consent still ends the sessions it no longer allows.
        hub = request.config_dict.get(HUB)
        if hub is not None and narrows(before, after):
            return hub.close_camera_sessions(after.camera_id, "consent changed")
        return 0
    if not narrows(before, after):
        await audit(request, "consent.change", camera_id=after.camera_id, owner_id=after.owner_id,
                    details={"before": consent_summary(before), "after": consent_summary(after)})
        return 0
    try:
        return await changes.consent_changed(request, before, after)
    except web.HTTPServiceUnavailable:
        hub = request.config_dict.get(HUB)
        if hub is not None:  # unaudited, but the revocation still takes effect
            hub.close_camera_sessions(after.camera_id, "consent changed")
        raise
