"""The security core's side of the contracts in ``rtcc.access``, as the other domains see it."""

from __future__ import annotations

import contextlib
import sqlite3

from rtcc.access import ActiveIncident, Actor, AgentAccount, FootageApproval
from rtcc.policy import Role
from security.core import SecurityCore
from security.store import SecurityTables


class StoreIncidents:
    """``rtcc.access.IncidentLookup`` on the incident book."""

    def __init__(self, core: SecurityCore) -> None:
        self._core = core

    async def active_incidents(self) -> list[ActiveIncident]:
        return [ActiveIncident(incident.id, incident.kind, incident.cameras)
                for incident in await self._core.incidents.recent(active_only=True)]

    async def active_for_camera(self, camera_id: str) -> list[str]:
        return await self._core.incidents.active_for_camera(camera_id)


class StoreFootageGrants:
    """``rtcc.access.FootageGrants`` on the security store."""

    def __init__(self, core: SecurityCore) -> None:
        self._core = core

    async def record_approval(self, approval: FootageApproval) -> None:
        await self._core.store.call(_record_approval, approval)

    async def approved_request_for(self, camera_id: str, user_id: int, now: float) -> str | None:
        return await self._core.store.approved_request_for(camera_id, user_id, now)


def _record_approval(tables: SecurityTables, approval: FootageApproval) -> None:
    with contextlib.suppress(sqlite3.IntegrityError):  # the same decision replayed
        tables.add_footage_request(
            approval.approval_id, approval.camera_id, approval.user_id, status="approved",
            purpose=approval.purpose, decided_by=approval.decided_by,
            decided_at=approval.decided_at, valid_until=approval.valid_until,
        )


class StoreAgentAccounts:
    """``rtcc.access.AgentAccounts``: token-only accounts of the ``agent`` role."""

    def __init__(self, core: SecurityCore) -> None:
        self._core = core

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

    async def owner_of_agent(self, agent_id: str) -> str | None:
        account = await self._core.accounts.by_name(f"agent-{agent_id}")
        if account is None or account.role != Role.AGENT or account.disabled:
            return None
        return account.owner_id
