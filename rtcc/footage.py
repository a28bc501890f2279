"""Contract between footage requests (``evidence``) and owners' agents (``ingest``).

When a camera's item of a footage request is approved (by its owner or by the owner's policy),
the evidence routes hand an ``ApprovedFootage`` to the ``FootageCourier`` the application
carries under ``FOOTAGE_COURIER``, if any. The agent side implements it: it tells the camera's
agent, over its control connection, to upload the range (``upload_footage``). Telling never
blocks the decision and never fails it: an agent that is offline finds its approved work when it
connects again (``GET /api/footage-requests``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from aiohttp import web


@dataclass(frozen=True, slots=True)
class ApprovedFootage:
    request_id: str
    camera_id: str
    owner_id: str
    start: float
    """UTC epoch seconds."""
    end: float
    case_number: str


class FootageCourier(Protocol):
    def footage_approved(self, approved: ApprovedFootage) -> None:
        """Pass the approval on to the camera's agent (in the background); cameras that no
        agent serves are ignored. Never raises, never waits on the network."""
        ...


FOOTAGE_COURIER = web.AppKey[FootageCourier]("footage_courier")
