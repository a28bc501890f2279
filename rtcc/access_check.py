"""Whether an analyst may open cameras live right now, without opening a view.

The console's access check (``GET /api/console/access``) and the catalog's searches asked with
``access=1`` answer with this, so a ranked list carries the same decision the check gives,
for the same stand-in purpose and no requested incident. Nothing is shown and nothing is
audited: the view itself is decided (and audited) again when it is opened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from rtcc.access import CameraConsent, IncidentLookup
from rtcc.config import SharingLevel
from rtcc.consent import Decision, decide
from rtcc.principal import Principal

CHECK_PURPOSE = "console access check"
"""Stands in for the analyst's purpose: the answer is about the camera, the purpose is asked
when the view is opened."""


def not_registered() -> dict[str, Any]:
    return {"sharing": None, "allowed": False, "incidents": [], "reason": "not registered",
            "needs_incident": False}


def access_of(consent: CameraConsent, incidents: list[str], principal: Principal,
              now: float) -> dict[str, Any]:
    """``{"sharing", "allowed", "reason", "incidents", "needs_incident"}`` for one camera;
    ``incidents``: the open incidents holding a valid grant on it."""

    def check(active: list[str]) -> Decision:
        return decide(consent, role=principal.role, owner_id=principal.owner_id,
                      purpose=CHECK_PURPOSE, requested_incident="", active_incidents=active,
                      now=now)

    decision = check(incidents)
    # A live_emergency camera that an active incident linking it would open.
    needs_incident = (not decision.allowed and not incidents
                      and consent.sharing == SharingLevel.LIVE_EMERGENCY
                      and check(["an incident to open"]).allowed)
    return {
        "sharing": str(consent.sharing),
        "allowed": decision.allowed,
        "reason": decision.reason,
        "incidents": incidents,
        "needs_incident": needs_incident,
    }


async def access_answers(consents: Mapping[str, CameraConsent | None], principal: Principal,
                         incident_lookup: IncidentLookup, now: float) -> dict[str, dict[str, Any]]:
    """``access_of`` for each camera (None: not registered). The incident lookups are asked
    together: they queue on the security store's thread either way, without a round trip
    through the event loop between them."""
    known = [(camera_id, consent) for camera_id, consent in consents.items()
             if consent is not None]
    found = await asyncio.gather(*(incident_lookup.active_for_camera(camera_id)
                                   for camera_id, _ in known))
    incidents = {camera_id: list(ids) for (camera_id, _), ids in zip(known, found, strict=True)}
    return {camera_id: (access_of(consent, incidents[camera_id], principal, now)
                        if consent is not None else not_registered())
            for camera_id, consent in consents.items()}
