"""Notifications x CAD incidents x security x catalog.

Every accepted change of a CAD incident is handed to the notifications service as
``IncidentFacts`` (its rules warn the facilities near it; closing it sends the all clear). The
service's audit entries go to the security audit chain. When an incident's emergency access
opens a grant on an owner's camera, or closes it, the owner hears from the department through
the same outbox (to the contact e-mail of their catalog entry).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiohttp import web

from catalog.keys import CATALOG_STORE
from incidents.routes import INCIDENT_SERVICE
from incidents.store import CadIncident, UpsertResult
from notify.routes import NOTIFY_SERVICE
from notify.service import IncidentFacts, NotifyService
from rtcc.appkeys import CAMERA_DIRECTORY
from rtcc.errors import AuditWriteError
from security.core import SECURITY
from security.grants import Grant

log = logging.getLogger(__name__)
ACTOR = ("notify", "integration")


def facts_of(incident: CadIncident) -> IncidentFacts:
    location = incident.location or {}
    return IncidentFacts(
        id=incident.tracking_id, type_code=incident.type_code or "",
        type_text=incident.type_text or "", point=incident.point(),
        address=str(location.get("address", "") or ""), closed=incident.closed)


async def _owner_email(app: web.Application, camera_id: str) -> tuple[str, str]:
    directory = app.get(CAMERA_DIRECTORY)
    consent = None if directory is None else await directory.consent_of(camera_id)
    if consent is None:
        return "", ""
    owner = await app[CATALOG_STORE].get_owner(consent.owner_id)
    return consent.owner_id, "" if owner is None else owner.contact_email


async def grants_changed(app: web.Application, incident_title: str, security_id: str,
                         grants: Sequence[Grant], opened: bool) -> None:
    """Tells each camera's owner that an incident opened (or closed) access to it."""
    service = app.get(NOTIFY_SERVICE)
    if service is None:
        return
    for grant in grants:
        owner_id, email = await _owner_email(app, grant.camera_id)
        if not email:
            continue
        if opened:
            subject = f"Emergency access to your camera {grant.camera_id}"
            body = (f"The department opened time-limited emergency access to your camera "
                    f"{grant.camera_id} for {incident_title}. Every view is recorded in your "
                    "access log; the access ends by itself or when the incident closes.")
        else:
            subject = f"All clear: emergency access to {grant.camera_id} ended"
            body = (f"The incident is over ({incident_title}); the department's access to "
                    f"your camera {grant.camera_id} has ended.")
        await service.notice(key=f"{security_id}/{grant.camera_id}/"
                                 f"{'opened' if opened else 'closed'}",
                             owner_id=owner_id, email=email, subject=subject, body=body,
                             actor=ACTOR)


def _audit_into_chain(app: web.Application) -> Any:
    async def audit(actor: str, role: str, action: str, target: str,
                    details: dict[str, Any]) -> None:
        try:
            await app[SECURITY].audit.append(actor=actor, role=role, action=action,
                                             target=target, details=details)
        except AuditWriteError:
            log.error("%s of %s could not be audited", action, target)
    return audit


async def notify_wiring_context(app: web.Application) -> AsyncIterator[None]:
    service: NotifyService = app[NOTIFY_SERVICE]
    service.audit = _audit_into_chain(app)

    async def outcome(delivery: Any, state: str, error: str) -> None:
        await service.record(ACTOR, f"notify.delivery.{state}", f"delivery:{delivery.id}",
                             {"key": delivery.key, "channel": delivery.channel,
                              "address": delivery.address, "attempt": delivery.attempts,
                              "error": error})

    async def hook(incident: CadIncident, result: UpsertResult | None) -> None:
        if result is not None and not result.changed:
            return
        await service.on_incident(facts_of(incident))

    incidents = app[INCIDENT_SERVICE]
    incidents.hooks.append(hook)
    service.outbox.listeners.append(outcome)
    yield
    service.outbox.listeners.remove(outcome)
    incidents.hooks.remove(hook)
    service.audit = None
