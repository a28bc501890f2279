"""The policy decision point for open views: every view is checked again while it runs.

``StoreMediaAccess.open_view`` registers each view it allows (the ``ViewGrant``, the principal,
the grant that allows it); the media path that keeps it open hands over the way to end it
(``attach``, the ``rtcc.access.ViewEnforcement`` contract); ``close_view`` forgets it.

A check reads, in one call on the security store's thread, the state every open view depends on
(accounts, sessions, tokens, the stored grants, the incidents' grants) and the cameras' consent
from the catalog, and ends each view no longer allowed, with the reason its ``view.stop`` entry
records. Checks run:
- at once on the events that can change the answer (``check_now``: consent change, account
  disabled, token revoked, logout, incident closed, grant revoked);
- at the next known boundary (a sharing window's end, a grant's ``valid_until``);
- every ``security.enforcement_interval_seconds`` as a backstop.
Expired grants are audited (``grant.expire``) by the same check.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfoNotFoundError

from aiohttp import web

from rtcc.access import CameraConsent, CameraDirectory, ViewGrant, ViewStopper
from rtcc.consent import clock_time, decide, in_windows
from rtcc.errors import AuditWriteError
from rtcc.principal import Principal
from rtcc.tasks import TaskSupervisor
from security import grants as grant_rows
from security.core import SecurityCore
from security.grants import Grant
from security.store import DATABASE_ERRORS, SecurityTables

log = logging.getLogger(__name__)
_CHECK_ERRORS: tuple[type[Exception], ...] = (*DATABASE_ERRORS, AuditWriteError)
"""A check that failed on these is tried again at the next tick."""

DIRECTORY_TIMEOUT = 5.0
MIN_WAIT = 0.2
"""Seconds between checks at the least, whatever the deadlines say."""


@dataclass(slots=True)
class OpenView:
    grant: ViewGrant
    principal: Principal
    purpose: str
    requested_incident: str
    basis: str
    """``owner``, ``sharing`` or ``incident``: what allowed the view when it opened."""
    grant_id: str
    """The stored grant allowing the view ('' for the owner's standing consent)."""
    sharing: str
    deadline: float | None
    """The next moment the answer is known to change (a window's end, a grant's expiry)."""
    window_end: float | None = None
    stop: ViewStopper | None = None
    ended: str | None = None


@dataclass(frozen=True, slots=True)
class State:
    """What the open views depend on, read at once."""

    disabled: dict[int, bool]
    """Every known user of the views: disabled or not (a deleted user is missing)."""
    sessions: frozenset[str]
    tokens: dict[int, tuple[float | None, float | None]]
    """Token id -> (revoked, expires)."""
    grants: dict[str, Grant]
    incidents: dict[str, list[str]]
    """Camera -> the active incidents holding a valid grant on it, newest first."""
    expired: list[Grant] = field(default_factory=list)


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


def read_state(tables: SecurityTables, users: Sequence[int], sessions: Sequence[str],
               tokens: Sequence[int], grant_ids: Sequence[str], cameras: Sequence[str],
               now: float) -> State:
    """Everything one check needs, in one visit to the store's thread."""
    conn = tables.conn
    disabled: dict[int, bool] = {}
    if users:
        for row in conn.execute(
            f"SELECT id, disabled FROM users WHERE id IN ({_marks(users)})",  # noqa: S608 -- placeholders only
            tuple(users),
        ).fetchall():
            disabled[int(row["id"])] = bool(row["disabled"])
    live_sessions: frozenset[str] = frozenset()
    if sessions:
        live_sessions = frozenset(str(row[0]) for row in conn.execute(
            f"SELECT id_hash FROM sessions WHERE id_hash IN ({_marks(sessions)})",  # noqa: S608 -- placeholders only
            tuple(sessions)).fetchall())
    token_state: dict[int, tuple[float | None, float | None]] = {}
    if tokens:
        for row in conn.execute(
            f"SELECT id, revoked, expires FROM api_tokens WHERE id IN ({_marks(tokens)})",  # noqa: S608 -- placeholders only
            tuple(tokens),
        ).fetchall():
            token_state[int(row["id"])] = (row["revoked"], row["expires"])
    found: dict[str, Grant] = {}
    for grant_id in grant_ids:
        grant = grant_rows.get(tables, grant_id)
        if grant is not None:
            found[grant_id] = grant
    incidents: dict[str, list[str]] = {}
    for camera_id in cameras:
        incidents[camera_id] = [g.basis_id for g in
                                grant_rows.incident_grants_for(tables, camera_id, now)]
    return State(disabled, live_sessions, token_state, found, incidents,
                 grant_rows.take_expired(tables, now))


class Enforcement:
    """Knows every open view and ends those no longer allowed. Implements
    ``rtcc.access.ViewEnforcement``."""

    def __init__(self, core: SecurityCore, directory: Callable[[], CameraDirectory | None],
                 interval: float) -> None:
        self._core = core
        self._directory = directory
        self.interval = interval
        self._views: dict[str, OpenView] = {}
        self._wake = asyncio.Event()
        self._tasks = TaskSupervisor("enforcement")
        self.checks = 0
        self.ended = 0

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks.start("security:enforcement", self._run)

    async def aclose(self) -> None:
        await self._tasks.aclose()

    # -- views ----------------------------------------------------------------------------------

    def register(self, view: OpenView) -> None:
        self._views[view.grant.view_id] = view
        self._wake.set()  # a nearer deadline may have arrived

    def forget(self, view_id: str) -> None:
        self._views.pop(view_id, None)

    def attach(self, grant: ViewGrant, stop: ViewStopper) -> None:
        view = self._views.get(grant.view_id)
        if view is None:
            return
        if view.ended is not None:
            self._spawn_stop(view.grant.view_id, stop, view.ended)
        else:
            view.stop = stop

    def open_views(self) -> list[OpenView]:
        return [view for view in self._views.values() if view.ended is None]

    def stats(self) -> dict[str, object]:
        return {"open_views": len(self.open_views()), "checks": self.checks,
                "ended": self.ended, "interval": self.interval}

    # -- checking -------------------------------------------------------------------------------

    def poke(self) -> None:
        """Check every view soon (from code that cannot wait)."""
        self._wake.set()

    async def check_now(self) -> int:
        """Check every open view now; returns how many were ended."""
        return await self._check()

    async def _run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self._next_wait()):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self._check()
            except _CHECK_ERRORS as exc:
                # The store is busy or failing: the next tick tries again.
                log.warning("checking the open views failed: %s", exc)

    def _next_wait(self) -> float:
        wait = self.interval
        now = self._core.clock()
        for view in self.open_views():
            if view.deadline is not None:
                wait = min(wait, view.deadline - now)
        return max(MIN_WAIT, wait)

    async def _check(self) -> int:
        core = self._core
        now = core.clock()
        views = self.open_views()
        users = sorted({v.principal.user_id for v in views})
        sessions = sorted({v.principal.session_hash for v in views
                           if v.principal.auth == "session" and v.principal.session_hash})
        tokens = sorted({v.principal.token_id for v in views
                         if v.principal.auth == "token" and v.principal.token_id is not None})
        grant_ids = sorted({v.grant_id for v in views if v.grant_id})
        cameras = sorted({v.grant.camera_id for v in views})
        state = await core.store.call(read_state, users, sessions, tokens, grant_ids, cameras,
                                      now)
        self.checks += 1
        consents = await self._consents({*cameras, *(g.camera_id for g in state.expired)})
        for grant in state.expired:
            await self._audit_expiry(grant, consents.get(grant.camera_id))
        ended = 0
        for view in views:
            if view.ended is not None:  # ended while this check waited
                continue
            camera_id = view.grant.camera_id
            reason = self._judge(view, state, consents.get(camera_id, _UNKNOWN),
                                 consents is not _NO_ANSWER, now)
            if reason is not None:
                self._end(view, reason)
                ended += 1
        return ended

    async def _consents(self, cameras: set[str]) -> dict[str, CameraConsent | None]:
        directory = self._directory()
        if directory is None or not cameras:
            return _NO_ANSWER if directory is None else {}
        ordered = sorted(cameras)
        try:
            async with asyncio.timeout(DIRECTORY_TIMEOUT):
                found = await asyncio.gather(*(directory.consent_of(c) for c in ordered))
        except TimeoutError:
            log.warning("the camera catalog did not answer in time; consent is checked again "
                        "at the next tick")
            return _NO_ANSWER
        return dict(zip(ordered, found, strict=True))

    def _judge(self, view: OpenView, state: State, consent: object,
               catalog_answered: bool, now: float) -> str | None:
        """Why the view must end now, or None while it is still allowed."""
        principal = view.principal
        disabled = state.disabled.get(principal.user_id)
        if disabled is None or disabled:
            return "the account was disabled"
        if principal.auth == "session" and principal.session_hash not in state.sessions:
            return "the session ended (logged out, or it expired)"
        if principal.auth == "token":
            revoked, expires = state.tokens.get(principal.token_id or -1, (now, None))
            if revoked is not None:
                return "the token was revoked"
            if expires is not None and expires <= now:
                return "the token expired"
        if view.grant_id:
            grant = state.grants.get(view.grant_id)
            if grant is None or grant.revoked is not None:
                detail = grant.revoke_reason if grant is not None else ""
                return f"the grant was revoked ({detail})" if detail else "the grant was revoked"
            if grant.valid_until is not None and grant.valid_until <= now:
                return "the grant expired"
            view.deadline = grant.valid_until
        if not catalog_answered or consent is _UNKNOWN:
            return None
        if consent is None:
            return "the camera is no longer registered"
        assert isinstance(consent, CameraConsent)
        decision = decide(consent, role=principal.role, owner_id=principal.owner_id,
                          purpose=view.purpose, requested_incident=view.requested_incident,
                          active_incidents=state.incidents.get(view.grant.camera_id, []),
                          now=now)
        if not decision.allowed:
            return self._refusal(view, consent, decision.reason, now)
        if decision.basis != view.basis:
            return (f"the grant that allowed this view no longer applies (now: "
                    f"{decision.reason}); open it again")
        view.window_end = decision.valid_until
        deadlines = [d for d in (view.deadline, decision.valid_until) if d is not None]
        view.deadline = min(deadlines) if deadlines else None
        return None

    @staticmethod
    def _refusal(view: OpenView, consent: CameraConsent, reason: str, now: float) -> str:
        if str(consent.sharing) != view.sharing:
            return f"the owner changed the camera's sharing to {consent.sharing}: {reason}"
        try:
            outside = bool(consent.windows) and not in_windows(consent.windows,
                                                               consent.timezone, now)
        except (ZoneInfoNotFoundError, ValueError):
            outside = False
        if outside:
            ended_at = clock_time(view.window_end or now, consent.timezone)
            return f"the owner's sharing window ended at {ended_at}"
        return f"no longer allowed: {reason}"

    def _end(self, view: OpenView, reason: str) -> None:
        view.ended = reason
        self.ended += 1
        log.info("camera %s: ending view %s of %s: %s", view.grant.camera_id,
                 view.grant.view_id, view.grant.user, reason)
        if view.stop is not None:
            self._spawn_stop(view.grant.view_id, view.stop, reason)

    def _spawn_stop(self, view_id: str, stop: ViewStopper, reason: str) -> None:
        async def run() -> None:
            await stop(reason)

        if not self._tasks.closed:
            self._tasks.spawn(f"enforcement:end:{view_id}", run())

    async def _audit_expiry(self, grant: Grant, consent: object) -> None:
        owner_id = consent.owner_id if isinstance(consent, CameraConsent) else ""
        try:
            await self._core.audit.append(
                actor="system", role="", action="grant.expire", target=f"grant:{grant.id}",
                camera_id=grant.camera_id, owner_id=owner_id,
                details={"basis": grant.basis, "basis_id": grant.basis_id,
                         "valid_until": grant.valid_until})
        except AuditWriteError:
            log.error("camera %s: the expiry of grant %s could not be audited",
                      grant.camera_id, grant.id)


_UNKNOWN = object()
"""The catalog said nothing about a camera (it was not asked)."""
_NO_ANSWER: dict[str, CameraConsent | None] = {}
"""The catalog could not be asked: consent is checked again at the next tick."""


ENFORCEMENT = web.AppKey("view_enforcement_point", Enforcement)
"""The running policy decision point; set by ``security_context``."""


def enforcement_of(request: web.Request) -> Enforcement | None:
    return request.config_dict.get(ENFORCEMENT)


async def check_views(request: web.Request) -> int:
    """Check every open view now (after an event that may end some); views ended."""
    enforcement = enforcement_of(request)
    return 0 if enforcement is None else await enforcement.check_now()
