"""``rtcc.access.MediaAccess``: the gate every media path passes before the first byte leaves.

``open_view`` authenticates (the middleware already did), checks role and the owner's consent,
requires a purpose, names the one grant allowing the view, writes the ``view.start`` audit entry
(with that grant) and hands the view to the policy decision point (``security.enforcement``),
which ends it as soon as it is no longer allowed. If the audit write fails the view is refused
(503). ``close_view`` writes ``view.stop`` with the duration and the reason.
``consent_changed`` records an owner's change and ends the camera's open sessions.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable

from aiohttp import web

from rtcc.access import CameraConsent, CameraDirectory, ViewGrant
from rtcc.appkeys import CAMERA_DIRECTORY, HUB
from rtcc.consent import consent_summary, decide
from rtcc.errors import AuditWriteError
from rtcc.hub import StreamHub
from rtcc.principal import Principal, client_address, principal_of
from security.core import SecurityCore
from security.enforcement import Enforcement, OpenView

log = logging.getLogger(__name__)

MAX_PURPOSE = 300


def _error(cls: type[web.HTTPException], message: str) -> web.HTTPException:
    return cls(text=json.dumps({"error": message}), content_type="application/json")


def _clean(text: str) -> str:
    """Purpose text as recorded: printable, single line, bounded."""
    kept = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return kept[:MAX_PURPOSE]


class StoreMediaAccess:
    """Implements ``rtcc.access.MediaAccess`` on the security store."""

    def __init__(self, core: SecurityCore, enforcement: Enforcement | None = None,
                 directory: Callable[[], CameraDirectory | None] | None = None) -> None:
        self._core = core
        self._enforcement = enforcement
        self._directory = directory
        """The catalog, for callers that come without a web request (``open_view_as``)."""

    async def open_view(self, request: web.Request, camera_id: str, profile: str) -> ViewGrant:
        principal = principal_of(request)
        if principal is None:
            raise _error(web.HTTPUnauthorized, "log in first")
        return await self._open(principal, camera_id, profile,
                                purpose=request.query.get("purpose", ""),
                                incident=request.query.get("incident", ""),
                                source=client_address(request),
                                directory=request.config_dict.get(CAMERA_DIRECTORY))

    async def open_view_as(self, principal: Principal, camera_id: str, profile: str, *,
                           purpose: str, incident: str, source: str) -> ViewGrant:
        directory = self._directory() if self._directory is not None else None
        return await self._open(principal, camera_id, profile, purpose=purpose,
                                incident=incident, source=source, directory=directory)

    async def _open(self, principal: Principal, camera_id: str, profile: str, *, purpose: str,
                    incident: str, source: str, directory: CameraDirectory | None
                    ) -> ViewGrant:
        core = self._core
        if directory is None:
            raise _error(web.HTTPServiceUnavailable, "the camera catalog is not available")
        consent = await directory.consent_of(camera_id)
        if consent is None:
            raise _error(web.HTTPNotFound, f"camera {camera_id!r} is not registered")

        purpose = _clean(purpose)
        requested_incident = _clean(incident)[:64]
        now = core.clock()
        if requested_incident:
            found = await core.incidents.get(requested_incident)
            if found is None or not found.active:
                await self._deny(principal.username, str(principal.role), camera_id, consent,
                                 source, f"incident {requested_incident!r} is not active")
                raise _error(web.HTTPForbidden,
                             f"incident {requested_incident!r} does not exist or is closed")
        incident_grants = await core.grants.incident_grants_for(camera_id, now)
        decision = decide(
            consent,
            role=principal.role,
            owner_id=principal.owner_id,
            purpose=purpose,
            requested_incident=requested_incident,
            active_incidents=[grant.basis_id for grant in incident_grants],
            now=now,
        )
        if not decision.allowed:
            await self._deny(principal.username, str(principal.role), camera_id, consent, source,
                             decision.reason)
            cls = web.HTTPBadRequest if decision.status == 400 else web.HTTPForbidden
            raise _error(cls, decision.reason)

        # The one grant allowing the view: the owner's own camera, the owner's sharing level
        # and window (derived, no row), or the incident's stored grant.
        stored = next((g for g in incident_grants if g.basis_id == decision.incident), None)
        if decision.basis == "incident" and stored is not None:
            grant_info: dict[str, object] = stored.summary()
            deadlines = [d for d in (stored.valid_until, decision.valid_until) if d is not None]
            deadline = min(deadlines) if deadlines else None
        else:
            grant_info = {"id": f"{decision.basis}:{camera_id}", "basis": decision.basis,
                          "kind": "live", "subject": f"role:{principal.role}",
                          "valid_until": decision.valid_until}
            deadline = decision.valid_until
        recorded_purpose = purpose or (f"incident {decision.incident}" if decision.incident
                                       else decision.reason)
        view_id = secrets.token_hex(8)
        try:
            await core.audit.append(
                actor=principal.username, role=str(principal.role), action="view.start",
                target=f"view:{view_id}", camera_id=camera_id, owner_id=consent.owner_id,
                source=source,
                details={"profile": profile, "purpose": recorded_purpose,
                         "incident": decision.incident, "sharing": str(consent.sharing),
                         "grant": grant_info, "why": decision.reason},
            )
        except AuditWriteError:
            raise _error(web.HTTPServiceUnavailable,
                         "the audit log cannot be written, so no video is shown; tell an "
                         "administrator") from None
        extra = {"owner_id": consent.owner_id, "sharing": str(consent.sharing),
                 "grant_id": str(grant_info["id"]), "grant_basis": decision.basis}
        grant = ViewGrant(
            view_id=view_id, camera_id=camera_id, profile=profile, user=principal.username,
            role=str(principal.role), purpose=recorded_purpose, incident=decision.incident,
            source_address=source, started=now, extra=extra,
        )
        if self._enforcement is not None:
            self._enforcement.register(OpenView(
                grant=grant, principal=principal, purpose=purpose,
                requested_incident=requested_incident, basis=decision.basis,
                grant_id=stored.id if decision.basis == "incident" and stored else "",
                sharing=str(consent.sharing), deadline=deadline,
                window_end=decision.valid_until))
        return grant

    async def close_view(self, grant: ViewGrant, reason: str) -> None:
        if self._enforcement is not None:
            self._enforcement.forget(grant.view_id)
        duration = max(0.0, self._core.clock() - grant.started)
        try:
            await self._core.audit.append(
                actor=grant.user, role=grant.role, action="view.stop",
                target=f"view:{grant.view_id}", camera_id=grant.camera_id,
                owner_id=grant.extra.get("owner_id", ""), source=grant.source_address,
                details={"profile": grant.profile, "purpose": grant.purpose,
                         "incident": grant.incident, "duration_s": round(duration, 3),
                         "grant": grant.extra.get("grant_id", ""), "reason": reason},
            )
        except AuditWriteError:
            log.error("camera %s: the end of view %s could not be audited",
                      grant.camera_id, grant.view_id)

    async def consent_changed(
        self, request: web.Request, before: CameraConsent | None, after: CameraConsent
    ) -> int:
        """Record an owner's consent change and end the camera's open sessions.

        Viewers that reconnect are checked again against the new consent. Returns how many
        sessions were ended. Raises 503 if the change cannot be audited.
        """
        principal = principal_of(request)
        actor = principal.username if principal else "system"
        role = str(principal.role) if principal else ""
        return await record_consent_change(self._core, request.config_dict.get(HUB), actor, role,
                                           client_address(request), before, after,
                                           self._enforcement)

    async def _deny(self, actor: str, role: str, camera_id: str, consent: CameraConsent,
                    source: str, reason: str) -> None:
        try:
            await self._core.audit.append(
                actor=actor, role=role, action="view.start", outcome="denied",
                camera_id=camera_id, owner_id=consent.owner_id, source=source,
                details={"reason": reason, "sharing": str(consent.sharing)},
            )
        except AuditWriteError:
            log.error("camera %s: a refused view could not be audited", camera_id)


async def record_consent_change(
    core: SecurityCore,
    hub: StreamHub | None,
    actor: str,
    role: str,
    source: str,
    before: CameraConsent | None,
    after: CameraConsent,
    enforcement: Enforcement | None = None,
) -> int:
    """Audit a consent change (before/after) and end every open session of the camera."""
    try:
        await core.audit.append(
            actor=actor, role=role, action="consent.change", camera_id=after.camera_id,
            owner_id=after.owner_id, source=source,
            details={"before": consent_summary(before), "after": consent_summary(after)},
        )
    except AuditWriteError:
        raise _error(web.HTTPServiceUnavailable,
                     "the audit log cannot be written, so the change was not recorded") from None
    ended = 0 if hub is None else hub.close_camera_sessions(after.camera_id, "consent changed")
    if enforcement is not None:
        enforcement.poke()  # views elsewhere (not on this hub) are checked against the change
    log.info("camera %s: consent changed to %s by %s; %d sessions ended",
             after.camera_id, after.sharing, actor, ended)
    return ended
