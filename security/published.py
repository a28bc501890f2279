"""The security core's side of the contracts in ``rtcc.access``, as the other domains see it."""

from __future__ import annotations

import logging

from rtcc.access import ActiveIncident, Actor, AgentAccount, FootageApproval, GrantStanding
from rtcc.errors import AuditWriteError
from rtcc.policy import Role
from security.core import SecurityCore
from security.enforcement import Enforcement
from security.grants import INCIDENT_CLOSED

log = logging.getLogger(__name__)


class StoreIncidents:
    """``rtcc.access.IncidentLookup`` on the incident book."""

    def __init__(self, core: SecurityCore) -> None:
        self._core = core

    async def active_incidents(self) -> list[ActiveIncident]:
        return [ActiveIncident(incident.id, incident.kind, incident.cameras)
                for incident in await self._core.incidents.recent(active_only=True)]

    async def active_for_camera(self, camera_id: str) -> list[str]:
        grants = await self._core.grants.incident_grants_for(camera_id, self._core.clock())
        return list(dict.fromkeys(grant.basis_id for grant in grants))


class StoreFootageGrants:
    """``rtcc.access.FootageGrants`` on the security store."""

    def __init__(self, core: SecurityCore) -> None:
        self._core = core

    async def record_approval(self, approval: FootageApproval) -> None:
        grant = await self._core.grants.record_footage_approval(approval)
        if grant is None:  # the same decision replayed
            return
        try:
            await self._core.audit.append(
                actor=approval.decided_by, role="", action="grant.create",
                target=f"grant:{grant.id}", camera_id=grant.camera_id,
                owner_id=approval.owner_id, details=grant.as_json(grant.created))
        except AuditWriteError:
            log.error("camera %s: grant %s could not be audited", grant.camera_id, grant.id)

    async def approved_request_for(self, camera_id: str, user_id: int, now: float) -> str | None:
        return await self._core.store.approved_request_for(camera_id, user_id, now)

    async def recorded_grant_for(self, camera_id: str, user_id: int, start: float, end: float,
                                 now: float) -> str | None:
        return await self._core.grants.recorded_grant_for(camera_id, user_id, start, end, now)

    async def incident_grant_for(self, camera_id: str, incident_id: str, start: float,
                                 end: float) -> str | None:
        return await self._core.grants.incident_grant_for(camera_id, incident_id, start, end)

    async def grant_standing(self, grant_id: str) -> GrantStanding | None:
        grant = await self._core.grants.get(grant_id)
        if grant is None:
            return None
        revoked = grant.revoked is not None
        return GrantStanding(grant.id, grant.camera_id, revoked,
                             revoked and grant.revoke_reason != INCIDENT_CLOSED,
                             grant.valid_until)

    async def recorded_ranges_for(self, camera_id: str, user_id: int, now: float
                                  ) -> list[tuple[float, float]]:
        return await self._core.grants.recorded_ranges_for(camera_id, user_id, now)


class StoreAgentAccounts:
    """``rtcc.access.AgentAccounts``: token-only accounts of the ``agent`` role."""

    def __init__(self, core: SecurityCore, enforcement: Enforcement | None = None) -> None:
        self._core = core
        self._enforcement = enforcement

    async def create_agent_account(self, agent_id: str, owner_id: str, display_name: str,
                                   source: str) -> AgentAccount:
        core = self._core
        actor = Actor("agent-enrollment", "", source)
        user, _ = await core.accounts.create_user(
            actor, f"agent-{agent_id}", Role.AGENT, password=None,
            owner_id=owner_id, display_name=display_name, token_only=True,
        )
        token_id, credential = await core.tokens.create(user.id, f"agent {agent_id}", kind="agent")
        return AgentAccount(user.id, token_id, credential)

    async def retire_agent_account(self, actor: Actor, user_id: int, token_id: int) -> None:
        await self._core.tokens.revoke(token_id)
        await self._core.accounts.set_disabled(actor, user_id, True)
        if self._enforcement is not None:
            self._enforcement.poke()

    async def owner_of_agent(self, agent_id: str) -> str | None:
        account = await self._core.accounts.by_name(f"agent-{agent_id}")
        if account is None or account.role != Role.AGENT or account.disabled:
            return None
        return account.owner_id
