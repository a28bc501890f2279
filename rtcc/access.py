"""Contracts between media paths (relay, snapshots, exports) and the security core.

Every media path asks ``MediaAccess.open_view`` before the first byte leaves the server and calls
``close_view`` when the viewer leaves: that pair is what the audit log and the owner's access log
are made of. The security core decides using a ``CameraDirectory`` that the catalog implements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from rtcc.config import SharingLevel, TimeWindow


@dataclass(frozen=True, slots=True)
class CameraConsent:
    """What the owner allows for one camera, as the catalog knows it now."""

    camera_id: str
    owner_id: str
    sharing: SharingLevel
    windows: tuple[TimeWindow, ...] = ()
    ptz_allowed: bool = False
    timezone: str = "UTC"


class CameraDirectory(Protocol):
    async def consent_of(self, camera_id: str) -> CameraConsent | None:
        """None when no such camera is registered."""
        ...


@dataclass(frozen=True, slots=True)
class ViewGrant:
    """Permission for one viewer to receive one camera, recorded in the audit log."""

    view_id: str
    camera_id: str
    profile: str
    user: str
    role: str
    purpose: str
    incident: str
    source_address: str
    started: float
    extra: dict[str, str] = field(default_factory=dict)


class MediaAccess(Protocol):
    async def open_view(self, request: web.Request, camera_id: str, profile: str) -> ViewGrant:
        """Authorize a live view and audit its start, or raise an aiohttp HTTP error
        (401 not logged in, 403 with the reason, 404 unknown camera). If the audit write fails
        the view is refused."""
        ...

    async def close_view(self, grant: ViewGrant, reason: str) -> None:
        """Audit the end of a view (its duration is computed from ``grant.started``)."""
        ...


class SecretBox(Protocol):
    """Encrypts secrets (camera passwords, agent credentials) for storage at rest."""

    def encrypt(self, plaintext: str) -> str: ...

    def decrypt(self, token: str) -> str: ...
