"""The server side of on-premises agents: enrollment, credentials, inventory, revocation, and
agent cameras registered in the stream hub with WHIP sources.

An agent's credential is an API token of an AGENT-role account scoped to the owner (the security
core hashes it, the middleware resolves it). Revoking an agent revokes that token, disables the
account, closes its control connection and WHIP sessions, and removes its cameras from the hub.

The service is also the application's ``FootageCourier`` (``rtcc.footage``): an approved footage
request item of an agent camera becomes an ``upload_footage`` command to that camera's agent.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ingest.agentlink.registry import (
    AgentCommandError,
    AgentConnection,
    AgentOffline,
    AgentRegistry,
)
from ingest.agentlink.store import AgentCamera, AgentRecord, AgentStore, Enrollment
from ingest.agentlink.whip_source import AgentCameraRef, WhipPublishers, WhipSource, WhipTimings
from rtcc import agent_protocol as proto
from rtcc.access import Actor, AgentAccounts, AuditSink, Clock
from rtcc.agent_protocol import CameraReport
from rtcc.appkeys import AGENT_ACCOUNTS, AUDIT, CLOCK, DATABASE, HUB, SETTINGS
from rtcc.config import Settings
from rtcc.errors import RtccError, StoreUnavailable
from rtcc.footage import FOOTAGE_COURIER, ApprovedFootage
from rtcc.hub import Source, StreamHub, StreamSettings
from rtcc.offload import StoreClosed
from rtcc.policy import Role
from rtcc.principal import Principal
from rtcc.tasks import TaskSupervisor

log = logging.getLogger(__name__)

DEFAULT_ENROLLMENT_MINUTES = 24 * 60
MAX_ENROLLMENT_MINUTES = 7 * 24 * 60
SEEN_EVERY = 30.0
"""Seconds between writes of an agent's last-seen time."""
FOOTAGE_ANSWER = 15.0
"""Seconds an agent has to acknowledge an ``upload_footage`` command."""
_NAME = re.compile(r"[^A-Za-z0-9 ._@()-]")


class EnrollmentRefused(RtccError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class EnrollmentResult:
    agent: AgentRecord
    credential: str


class AgentService:
    def __init__(self, settings: Settings, store: AgentStore, accounts: AgentAccounts,
                 audit: AuditSink, clock: Clock, hub: StreamHub,
                 timings: WhipTimings | None = None) -> None:
        self.settings = settings
        self.store = store
        self.accounts = accounts
        self.audit = audit
        self.clock = clock
        self.hub = hub
        self.timings = timings or WhipTimings()
        self.registry = AgentRegistry()
        self.publishers = WhipPublishers()
        self._last_seen_write: dict[str, float] = {}
        self._tasks = TaskSupervisor("agents")

    # -- enrollment ---------------------------------------------------------------------------

    async def create_enrollment(self, owner_id: str, actor: Actor,
                                minutes: float = DEFAULT_ENROLLMENT_MINUTES
                                ) -> tuple[Enrollment, str]:
        now = self.clock()
        enrollment, token = await self.store.create_enrollment(owner_id, actor.name, now,
                                                               minutes * 60)
        await self.audit.append(actor=actor.name, role=actor.role, action="agent.enrollment",
                               target=f"enrollment:{enrollment.id}", owner_id=owner_id,
                               source=actor.source,
                               details={"expires": round(enrollment.expires, 3)})
        return enrollment, token

    async def enroll(self, token: str, name: str, source: str) -> EnrollmentResult:
        """Trade a one-time enrollment token for an agent credential."""
        now = self.clock()
        enrollment = await self.store.enrollment_by_token(token) if token else None
        if enrollment is None:
            await self._audit_refusal(source, "", "unknown enrollment token")
            raise EnrollmentRefused(401, "this enrollment token is not valid; copy it again "
                                         "from the owner portal")
        if enrollment.used is not None:
            await self._audit_refusal(source, enrollment.owner_id, "enrollment token reused")
            raise EnrollmentRefused(401, "this enrollment token was already used; an agent "
                                         "enrolls once; ask the portal for a new token")
        if enrollment.expires <= now:
            await self._audit_refusal(source, enrollment.owner_id, "enrollment token expired")
            raise EnrollmentRefused(410, "this enrollment token has expired; ask the portal "
                                         "for a new one")
        if not await self.store.claim_enrollment(enrollment.id, now):
            raise EnrollmentRefused(401, "this enrollment token was already used")
        agent_id = await self.store.new_agent_id()
        clean_name = _NAME.sub("", name)[:100].strip() or agent_id
        account = await self.accounts.create_agent_account(agent_id, enrollment.owner_id,
                                                           clean_name, source)
        agent = await self.store.add_agent(agent_id, enrollment.owner_id, account.user_id,
                                           account.token_id, clean_name, enrollment.id, now)
        await self.audit.append(actor=f"agent-{agent_id}", role=str(Role.AGENT),
                                action="agent.enroll", target=f"agent:{agent_id}",
                                owner_id=enrollment.owner_id, source=source,
                                details={"enrollment": enrollment.id, "name": clean_name})
        log.info("agent %s (%s) enrolled for owner %s", agent_id, clean_name,
                 enrollment.owner_id)
        return EnrollmentResult(agent, account.credential)

    async def _audit_refusal(self, source: str, owner_id: str, reason: str) -> None:
        await self.audit.append(actor="anonymous", role="", action="agent.enroll",
                                outcome="refused", owner_id=owner_id, source=source,
                                details={"reason": reason})

    # -- agents -------------------------------------------------------------------------------

    async def agent_of(self, principal: Principal) -> AgentRecord | None:
        """The live (not revoked) agent a bearer credential belongs to."""
        if principal.role != Role.AGENT:
            return None
        agent = await self.store.agent_of_user(principal.user_id)
        if agent is None or agent.revoked is not None:
            return None
        return agent

    def may_manage(self, principal: Principal, agent: AgentRecord) -> bool:
        return principal.role == Role.ADMIN or (
            principal.role == Role.OWNER and principal.owner_id == agent.owner_id
        )

    async def describe(self, agent: AgentRecord) -> dict[str, Any]:
        cameras = await self.store.cameras(agent.id)
        connection = self.registry.get(agent.id)
        return {
            "id": agent.id, "name": agent.name, "owner_id": agent.owner_id,
            "created": agent.created, "last_seen": agent.last_seen,
            "revoked": agent.revoked, "hostname": agent.hostname, "version": agent.version,
            "connected": connection is not None,
            "connection": connection.as_json() if connection is not None else None,
            "cameras": [camera.as_json() for camera in cameras],
            "streams": [s.stats() for s in self.publishers.of_agent(agent.id)],
        }

    async def revoke(self, agent: AgentRecord, actor: Actor) -> int:
        """Revoke an agent now; returns how many live sessions were ended."""
        if not await self.store.revoke(agent.id, actor.name, self.clock()):
            return 0
        await self.audit.append(actor=actor.name, role=actor.role, action="agent.revoke",
                                target=f"agent:{agent.id}", owner_id=agent.owner_id,
                                source=actor.source)
        await self.accounts.retire_agent_account(actor, agent.user_id, agent.token_id)
        await self.registry.disconnect(agent.id, proto.CLOSE_REVOKED,
                                       "this agent's credential was revoked")
        ended = await self.publishers.close_agent(agent.id, "the agent was revoked")
        for camera in await self.store.cameras(agent.id):
            ended += self.hub.close_camera_sessions(camera.camera_id, "the agent was revoked")
            await self.hub.unregister(camera.camera_id, "the agent was revoked")
        log.info("agent %s revoked by %s: %d sessions ended", agent.id, actor.name, ended)
        return ended

    # -- control connection -------------------------------------------------------------------

    async def connected(self, connection: AgentConnection) -> None:
        await self.registry.attach(connection)
        self._note_seen(connection.agent_id, self.clock())
        log.info("agent %s connected from %s", connection.agent_id, connection.source)

    async def disconnected(self, connection: AgentConnection) -> None:
        await self.registry.detach(connection)
        if self.registry.get(connection.agent_id) is None:
            await self.publishers.close_agent(connection.agent_id,
                                              "the agent's control connection closed")
        log.info("agent %s disconnected", connection.agent_id)

    def heard_from(self, connection: AgentConnection, message: dict[str, Any]) -> None:
        now = self.clock()
        connection.last_message = now
        if message.get("type") == "hello":
            connection.hostname = proto.text_field(message, "hostname", limit=100)
            connection.version = proto.text_field(message, "version", limit=40)
            self._note_seen(connection.agent_id, now, connection.hostname, connection.version)
        elif now - self._last_seen_write.get(connection.agent_id, 0.0) >= SEEN_EVERY:
            self._note_seen(connection.agent_id, now)

    def _note_seen(self, agent_id: str, now: float, hostname: str | None = None,
                   version: str | None = None) -> None:
        """Write the last-seen time in the background: the agent's messages (command results)
        are not held up while another process holds the store's lock."""
        self._last_seen_write[agent_id] = now
        if not self._tasks.closed:
            self._tasks.spawn(f"agent:{agent_id}:seen",
                              self._write_seen(agent_id, now, hostname, version))

    async def _write_seen(self, agent_id: str, now: float, hostname: str | None,
                          version: str | None) -> None:
        try:
            await self.store.seen(agent_id, now, hostname, version)
        except (sqlite3.Error, StoreUnavailable, StoreClosed) as exc:
            log.warning("agent %s: its last-seen time was not saved: %s", agent_id, exc)

    async def inventory(
        self, agent: AgentRecord, message: dict[str, Any]
    ) -> tuple[list[AgentCamera], list[dict[str, str]]]:
        """Save the reported cameras; also what was refused (key and reason) for the agent."""
        reports, problems = proto.parse_inventory(message)
        for problem in problems:
            log.warning("agent %s: inventory entry refused: %s", agent.id, problem)
        reports, refused = await self._within_cap(agent, reports)
        cameras = await self.store.save_cameras(agent, reports, self.clock())
        for camera in cameras:
            self.register_camera(camera)
        log.info("agent %s reports %d cameras (%d working)", agent.id, len(cameras),
                 sum(1 for c in cameras if c.report.status == "ok"))
        return cameras, refused

    async def _within_cap(self, agent: AgentRecord, reports: list[CameraReport]
                          ) -> tuple[list[CameraReport], list[dict[str, str]]]:
        """The reports to save (cameras already known, then new ones up to the cap) and the
        refused ones: cameras not reported again stay registered, so the cap counts them."""
        limit = self.settings.agent.max_cameras
        known = {camera.report.key for camera in await self.store.cameras(agent.id)}
        count = len(known)
        kept: list[CameraReport] = []
        refused: list[dict[str, str]] = []
        reason = (f"this agent already has {limit} cameras, the most one agent may register; "
                  "remove cameras it no longer serves or ask the department to raise "
                  "agent.max_cameras")
        for report in reports:
            if report.key in known:
                kept.append(report)
            elif count < limit:
                kept.append(report)
                count += 1
            else:
                refused.append({"key": report.key, "reason": reason})
        if refused:
            log.warning("agent %s (owner %s): %d new camera(s) refused: %s", agent.id,
                        agent.owner_id, len(refused), reason)
        return kept, refused

    # -- footage requests ---------------------------------------------------------------------

    def footage_approved(self, approved: ApprovedFootage) -> None:
        """``FootageCourier``: tell the camera's agent to upload the approved range."""
        if self._tasks.closed:
            log.warning("footage request %s: the server is stopping; the camera's agent finds "
                        "the approval when it connects again", approved.request_id)
            return
        self._tasks.spawn(f"camera:{approved.camera_id}:footage:{approved.request_id}",
                          self._order_footage(approved))

    async def _order_footage(self, approved: ApprovedFootage) -> None:
        try:
            camera = await self.store.camera(approved.camera_id)
            agent = None if camera is None else await self.store.agent(camera.agent_id)
        except (sqlite3.Error, StoreUnavailable, StoreClosed) as exc:
            log.warning("footage request %s: the agent store did not answer: %s",
                        approved.request_id, exc)
            return
        if camera is None:
            return  # not an agent camera
        if agent is None or agent.revoked is not None or agent.owner_id != approved.owner_id:
            log.warning("footage request %s: camera %s has no agent of owner %s to upload it",
                        approved.request_id, approved.camera_id, approved.owner_id)
            return
        order = proto.FootageOrder(approved.request_id, approved.camera_id, approved.start,
                                   approved.end, approved.case_number)
        try:
            data = await self.registry.send_command(
                camera.agent_id, "upload_footage", within=FOOTAGE_ANSWER, key=camera.report.key,
                **order.to_json())
        except AgentOffline:
            log.info("footage request %s: agent %s is offline; it finds the approval when it "
                     "connects", approved.request_id, camera.agent_id)
            return
        except AgentCommandError as exc:
            log.warning("footage request %s: %s", approved.request_id, exc)
            return
        log.info("footage request %s: agent %s accepted the upload of camera %s (%s)",
                 approved.request_id, camera.agent_id, camera.camera_id,
                 proto.text_field(data, "state", limit=20))

    # -- hub ----------------------------------------------------------------------------------

    def stream_settings(self) -> StreamSettings:
        hub = self.settings.hub
        return StreamSettings(close_after=hub.close_after, start_timeout=hub.start_timeout,
                              preload=False, gop_cache_bytes=hub.gop_cache_bytes,
                              gop_cache_age=hub.gop_cache_age,
                              subscriber_queue=hub.subscriber_queue)

    def register_camera(self, camera: AgentCamera) -> None:
        """Make each reported profile of an agent camera viewable (idempotent)."""
        existing = set(self.hub.profiles(camera.camera_id))
        for profile in camera.report.profiles:
            if profile.name in existing:
                continue
            ref = AgentCameraRef(camera.camera_id, profile.name, camera.agent_id,
                                 camera.report.key)
            try:
                self.hub.register(camera.camera_id, profile.name, self._factory(ref),
                                  self.stream_settings())
            except ValueError as exc:
                log.warning("agent camera %s: %s", camera.camera_id, exc)

    def _factory(self, ref: AgentCameraRef) -> Any:
        def make() -> Source:
            return WhipSource(ref, self.registry, self.publishers, self.timings)

        return make

    async def shutdown(self) -> None:
        await self._tasks.aclose()
        await self.registry.close_all()
        await self.publishers.close_all("the server is shutting down")


AGENT_SERVICE = web.AppKey("agent_service", AgentService)
AGENT_TIMINGS = web.AppKey("agent_whip_timings", WhipTimings)
"""Optional: set before the app starts to change how long WHIP sources wait (tests)."""


async def agent_context(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx, after the security core's and the hub's: open the agent store, register the
    cameras of every enrolled agent in the hub, close connections and sessions at the end."""
    settings = app[SETTINGS]
    store = await AgentStore.open(app[DATABASE])
    service = AgentService(settings, store, app[AGENT_ACCOUNTS], app[AUDIT],
                           app.get(CLOCK, time.time), app[HUB], app.get(AGENT_TIMINGS))
    app[AGENT_SERVICE] = service
    app[FOOTAGE_COURIER] = service
    try:
        for camera in await store.cameras():
            service.register_camera(camera)
        yield
        await service.shutdown()
    finally:
        await store.aclose()


async def _on_shutdown(app: web.Application) -> None:
    service = app.get(AGENT_SERVICE)
    if service is not None:
        await service.shutdown()


def install(app: web.Application) -> None:
    """Close control connections when the server stops, before handlers are cancelled."""
    app.on_shutdown.append(_on_shutdown)


__all__ = ["AGENT_SERVICE", "AGENT_TIMINGS", "AgentService", "CameraReport", "agent_context",
           "install"]
