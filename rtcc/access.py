"""Contracts between the security core and the other domains.

Every media path asks ``MediaAccess.open_view`` before the first byte leaves the server and calls
``close_view`` when the viewer leaves: that pair is what the audit log and the owner's access log
are made of. The security core decides using a ``CameraDirectory`` that the catalog implements.

The security core also publishes (``rtcc.appkeys``): the audit log as an ``AuditSink``, the
active incidents (``IncidentLookup``), approved footage requests (``FootageGrants``), consent
changes (``ConsentChanges``), the accounts of owners' agents (``AgentAccounts``) and the policy
decision point that ends open views no longer allowed (``ViewEnforcement``). Domains use
these and never the security package itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from rtcc.config import Settings, SharingLevel, TimeWindow
from rtcc.principal import Actor as Actor  # part of this contract; defined beside Principal
from rtcc.principal import Principal

Clock = Callable[[], float]


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


class RecordFlags(Protocol):
    async def cameras_set_to_record(self) -> frozenset[str]:
        """Ids of the cameras whose catalog entry says ``record: true`` (set in the
        configuration or through the API). Raises ``rtcc.errors.StoreUnavailable`` when the
        catalog cannot be read."""
        ...


class PullClaims(Protocol):
    async def claim(self, camera_ids: frozenset[str]) -> frozenset[str]:
        """Of these cameras, which must run with no viewer (recorded, preloaded), the ones this
        node pulls: those whose lease it holds, and unheld ones placement gives it (it takes
        their leases). Never raises: when the cluster cannot be asked, the ones it held."""
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


ViewStopper = Callable[[str], Awaitable[None]]
"""Ends one open view now, with the reason its ``view.stop`` audit entry records."""


class ViewEnforcement(Protocol):
    """The policy decision point that checks open views again while they run (published by the
    security core). A media path that keeps a view open hands it the way to end it."""

    def attach(self, grant: ViewGrant, stop: ViewStopper) -> None:
        """``stop`` ends the view ``grant`` allowed; called at once if it is no longer
        allowed."""
        ...

    def poke(self) -> None:
        """Check every open view again soon (something they depend on changed, here or on
        another node)."""
        ...


class MediaAccess(Protocol):
    async def open_view(self, request: web.Request, camera_id: str, profile: str) -> ViewGrant:
        """Authorize a live view and audit its start, or raise an aiohttp HTTP error
        (401 not logged in, 403 with the reason, 404 unknown camera). If the audit write fails
        the view is refused."""
        ...

    async def open_view_as(self, principal: Principal, camera_id: str, profile: str, *,
                           purpose: str, incident: str, source: str) -> ViewGrant:
        """``open_view`` for a caller a media path authenticated itself (the RTSP server's
        Basic login): the same decision, errors and ``view.start`` entry, with ``source`` as
        the client's address in the audit."""
        ...

    async def close_view(self, grant: ViewGrant, reason: str) -> None:
        """Audit the end of a view (its duration is computed from ``grant.started``)."""
        ...


class SecretBox(Protocol):
    """Encrypts secrets (camera passwords, agent credentials) for storage at rest."""

    def encrypt(self, plaintext: str) -> str: ...

    def decrypt(self, token: str) -> str: ...


class AuditSink(Protocol):
    """The tamper-evident audit log.

    ``append`` writes one entry durably before it returns, or raises
    ``rtcc.errors.AuditWriteError``: the caller then refuses what it was about to do (or, when
    that has already happened, logs the failure). The write runs off the event loop, so a busy
    audit file holds up only the audited action, never the video.
    """

    async def append(
        self,
        *,
        actor: str,
        role: str,
        action: str,
        target: str = "",
        camera_id: str = "",
        owner_id: str = "",
        outcome: str = "ok",
        source: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> object: ...


class AuditFile(Protocol):
    """The audit log opened by a command-line program: ``append`` as in ``AuditSink``, but
    synchronous (the program owns its process; no event loop waits on it)."""

    def append(
        self,
        *,
        actor: str,
        role: str,
        action: str,
        target: str = "",
        camera_id: str = "",
        owner_id: str = "",
        outcome: str = "ok",
        source: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> object: ...


AuditOpener = Callable[[Settings], AbstractContextManager[AuditFile]]
"""Opens the audit log of a server's data directory for a command-line program."""


@dataclass(frozen=True, slots=True)
class ActiveIncident:
    """An open incident or panic alert and the cameras linked to it."""

    id: str
    kind: str
    cameras: tuple[str, ...]


class IncidentLookup(Protocol):
    async def active_incidents(self) -> list[ActiveIncident]:
        """Open incidents and panic alerts, newest first."""
        ...

    async def active_for_camera(self, camera_id: str) -> list[str]:
        """Ids of the open incidents holding a valid grant on the camera (linked to it less
        than ``security.emergency_grant_minutes`` ago), newest first."""
        ...


@dataclass(frozen=True, slots=True)
class FootageApproval:
    """An owner's approval of one camera of a footage request, for one requester: the recorded
    footage of ``start``..``end`` (epoch seconds), never live video."""

    approval_id: str
    camera_id: str
    user_id: int
    purpose: str
    decided_by: str
    decided_at: float
    valid_until: float | None
    start: float = 0.0
    end: float = 0.0
    owner_id: str = ""


@dataclass(frozen=True, slots=True)
class GrantStanding:
    """Where a stored grant stands now, for a check made after it was used (a download of
    footage exported under it)."""

    grant_id: str
    camera_id: str
    revoked: bool
    withdrawn: bool
    """Revoked by the camera's owner, not ended by its incident closing."""
    valid_until: float | None


class FootageGrants(Protocol):
    async def record_approval(self, approval: FootageApproval) -> None:
        """Record the approval as a ``recorded`` grant of its range; recording the same
        approval again changes nothing. The owner's decision waits for it."""
        ...

    async def approved_request_for(self, camera_id: str, user_id: int, now: float) -> str | None:
        """The id of a valid approved footage request of that user for that camera, if any
        (it grants recorded footage of its range only)."""
        ...

    async def recorded_grant_for(self, camera_id: str, user_id: int, start: float, end: float,
                                 now: float) -> str | None:
        """The id of a valid grant of that user to the camera's recorded footage covering
        ``start``..``end``, if any."""
        ...

    async def incident_grant_for(self, camera_id: str, incident_id: str, start: float,
                                 end: float) -> str | None:
        """The id of the incident's grant on the camera whose validity (from its creation to
        its expiry or revocation) covers ``start``..``end``, if any: footage recorded while
        the camera was opened for the incident."""
        ...

    async def grant_standing(self, grant_id: str) -> GrantStanding | None:
        """The stored grant's standing now; None for an unknown id."""
        ...

    async def recorded_ranges_for(self, camera_id: str, user_id: int, now: float
                                  ) -> list[tuple[float, float]]:
        """The ranges of the camera's recorded footage the valid ``recorded`` grants of that
        user cover."""
        ...


class ConsentChanges(Protocol):
    async def consent_changed(
        self, request: web.Request, before: CameraConsent | None, after: CameraConsent
    ) -> int:
        """Audit an owner's consent change and end the camera's open sessions; returns how
        many. Raises 503 (JSON) when the change cannot be audited."""
        ...


@dataclass(frozen=True, slots=True)
class AgentAccount:
    """The token-only account an enrolled agent connects with."""

    user_id: int
    token_id: int
    credential: str
    """The agent's bearer token; shown once, never stored in clear."""


class AgentAccounts(Protocol):
    async def create_agent_account(self, agent_id: str, owner_id: str, display_name: str,
                                   source: str) -> AgentAccount:
        """A new ``agent`` account scoped to the owner, and its credential."""
        ...

    async def retire_agent_account(self, actor: Actor, user_id: int, token_id: int) -> None:
        """Revoke the agent's credential and disable its account."""
        ...

    async def owner_of_agent(self, agent_id: str) -> str | None:
        """The owner an enabled agent account belongs to; None for an unknown or revoked
        agent."""
        ...


@dataclass(frozen=True, slots=True)
class IntakeFile:
    """A file handed to the evidence store by another domain (a tip's photo or video)."""

    path: Path
    """The file's plain bytes; the intake copies them and never moves or deletes this file."""
    media_type: str
    """What the file is, judged by its bytes (``image/jpeg``, ``video/mp4``...)."""
    extension: str
    """The name's ending for the stored copy and the export (``jpg``, ``mp4``)."""
    case_number: str
    incident_id: str
    source: str
    """Where it came from, for the chain of custody (``tip T-ABCD-2345 file 3f9a...``)."""
    promoted_by: Actor
    reason: str


@dataclass(frozen=True, slots=True)
class IntakeReceipt:
    item_id: str
    sha256: str
    bytes: int
    hold_id: str


class EvidenceIntake(Protocol):
    """Evidence items from files: hashed, stored under a legal hold, their custody recorded,
    exported by ``rtcc export --item`` like any footage. Published by the evidence domain."""

    async def add_file(self, file: IntakeFile) -> IntakeReceipt:
        """Copy, hash and hold the file (off the event loop); raises
        ``rtcc.errors.RtccError`` saying why when it cannot be taken."""
        ...
