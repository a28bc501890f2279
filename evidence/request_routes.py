"""Footage request routes: investigators ask, owners decide (or their policy does).

- ``POST /api/footage-requests`` (investigator, supervisor, admin): ``{"cameras": [...],
  "from": T, "to": T, "case": "...", "reason": "...", "incident": "..."}``.
- ``GET /api/footage-requests`` and ``GET /api/footage-requests/{id}``: investigators see their
  own requests, supervisors and administrators all; owners see the requests that name their
  cameras (only those cameras), agents the approved ones.
- ``POST /api/footage-requests/{id}/approve`` and ``.../decline`` (owner, admin):
  ``{"cameras": [...] (default: all of yours still pending), "note": "..."}``.
- ``GET`` / ``PUT /api/footage-policy`` (owner): ``{"mode": "manual" | "auto_approve",
  "max_hours": null | N}``.

Every approval, by hand or by policy, is passed to the ``FootageCourier`` (``rtcc.footage``) so
that the camera's agent starts uploading at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiohttp import web

from evidence.httpio import CASE_NUMBER, audit, camera_list, evidence_core, text, time_range
from evidence.requests import APPROVED, DecisionError, FootageRequest, Item, OwnerPolicy
from rtcc.access import CameraConsent
from rtcc.appkeys import CAMERA_DIRECTORY, clock_of
from rtcc.errors import AuditWriteError
from rtcc.footage import FOOTAGE_COURIER, ApprovedFootage
from rtcc.http import error, read_json
from rtcc.policy import Role, allow
from rtcc.principal import Principal, require_principal

log = logging.getLogger(__name__)

ASKERS = (Role.INVESTIGATOR, Role.SUPERVISOR, Role.ADMIN)
READERS = (*ASKERS, Role.OWNER, Role.AGENT)
DECIDERS = (Role.OWNER, Role.ADMIN)
MAX_RANGE_SECONDS = 7 * 86400.0
DIRECTORY_TIMEOUT = 5.0


async def _consents(request: web.Request, cameras: Sequence[str]
                    ) -> dict[str, CameraConsent | None]:
    directory = request.config_dict.get(CAMERA_DIRECTORY)
    if directory is None:
        raise error(503, "the camera catalog is not available")
    try:
        async with asyncio.timeout(DIRECTORY_TIMEOUT):
            found = await asyncio.gather(*(directory.consent_of(c) for c in cameras))
    except TimeoutError:
        raise error(503, "the camera catalog did not answer in time") from None
    return dict(zip(cameras, found, strict=True))


async def _owned_now(request: web.Request, principal: Principal, items: Sequence[Item]
                     ) -> frozenset[str]:
    """Of these items' cameras, those the catalog says belong to the principal's owner now."""
    if not items or principal.owner_id is None:
        return frozenset()
    consents = await _consents(request, [item.camera_id for item in items])
    return frozenset(camera for camera, consent in consents.items()
                     if consent is not None and consent.owner_id == principal.owner_id)


async def _visible(request: web.Request, principal: Principal, found: FootageRequest
                   ) -> tuple[Item, ...]:
    items = evidence_core(request).requests.visible_items(found, principal)
    if principal.role in (Role.OWNER, Role.AGENT):
        owned = await _owned_now(request, principal, items)
        items = tuple(item for item in items if item.camera_id in owned)
    return items


def _tell_agents(request: web.Request, found: FootageRequest, items: Sequence[Item]) -> None:
    courier = request.config_dict.get(FOOTAGE_COURIER)
    if courier is None:
        return
    for item in items:
        if item.status == APPROVED:
            courier.footage_approved(ApprovedFootage(
                request_id=found.id, camera_id=item.camera_id, owner_id=item.owner_id,
                start=found.start, end=found.end, case_number=found.case_number))


@allow(*ASKERS)
async def create_request(request: web.Request) -> web.Response:
    core = evidence_core(request)
    principal = require_principal(request)
    fields = await read_json(request)
    cameras = camera_list(fields)
    start, end = time_range(fields)
    if end - start > MAX_RANGE_SECONDS:
        raise error(400, "a footage request covers at most 7 days; send several")
    case = text(fields, "case", limit=64, required=True, pattern=CASE_NUMBER)
    reason = text(fields, "reason", limit=500, required=True)
    incident = text(fields, "incident", limit=64)
    consents = await _consents(request, cameras)
    unknown = [camera for camera, consent in consents.items() if consent is None]
    if unknown:
        raise error(404, f"camera {unknown[0]!r} is not registered")
    pairs = [(camera, consent.owner_id) for camera, consent in consents.items()
             if consent is not None]
    request_id = core.requests.new_id()
    await audit(request, principal, "footage_request.create",
                target=f"footage_request:{request_id}",
                details={"cameras": cameras, "case": case, "reason": reason, "start": start,
                         "end": end, "incident": incident})
    now = clock_of(request)()
    created = await core.requests.create(request_id, principal, pairs, start=start, end=end,
                                         case_number=case, reason=reason, incident=incident,
                                         now=now)
    for item in created.items:
        if item.auto:
            try:
                await core.audit.append(
                    actor="policy", role="owner", action="footage_request.approve",
                    target=f"footage_request:{request_id}", camera_id=item.camera_id,
                    owner_id=item.owner_id, details={"case": case, "automatic": True})
            except AuditWriteError:
                log.error("footage request %s: the automatic approval of camera %s could not "
                          "be audited", request_id, item.camera_id)
    _tell_agents(request, created, [item for item in created.items if item.auto])
    return web.json_response(created.as_json(), status=201)


@allow(*READERS)
async def list_requests(request: web.Request) -> web.Response:
    core = evidence_core(request)
    principal = require_principal(request)
    status = request.query.get("status", "")
    out = []
    for found in await core.requests.list_for(principal):
        items = await _visible(request, principal, found)
        if not items and principal.role not in ASKERS:
            continue
        body = found.as_json(items)
        if status and body["status"] != status:
            continue
        out.append(body)
    return web.json_response({"requests": out})


async def _find(request: web.Request, principal: Principal
                ) -> tuple[FootageRequest, tuple[Item, ...]]:
    core = evidence_core(request)
    found = await core.requests.get(request.match_info["request_id"])
    if found is None:
        raise error(404, "no such footage request")
    items = await _visible(request, principal, found)
    if not items:
        raise error(404, "no such footage request")
    return found, items


@allow(*READERS)
async def get_request(request: web.Request) -> web.Response:
    principal = require_principal(request)
    found, items = await _find(request, principal)
    return web.json_response(found.as_json(items))


async def _decide(request: web.Request, approve: bool) -> web.Response:
    core = evidence_core(request)
    principal = require_principal(request)
    found, visible = await _find(request, principal)
    fields = await read_json(request)
    cameras = camera_list(fields) if fields.get("cameras") else []
    note = text(fields, "note", limit=500)
    owned = None if principal.role == Role.ADMIN else await _owned_now(request, principal,
                                                                      visible)
    try:
        chosen = core.requests.choose(found, principal, cameras, owned)
    except DecisionError as exc:
        raise error(409, str(exc)) from None
    action = "footage_request.approve" if approve else "footage_request.decline"
    for item in chosen:
        await audit(request, principal, action, target=f"footage_request:{found.id}",
                    camera_id=item.camera_id, owner_id=item.owner_id,
                    details={"case": found.case_number, "note": note, "requester": found.requester})
    now = clock_of(request)()
    decided = await core.requests.decide(found, chosen, approve, principal.username, note, now)
    updated = await core.requests.get(found.id)
    assert updated is not None
    if approve:
        _tell_agents(request, updated, decided)
    return web.json_response(updated.as_json(await _visible(request, principal, updated)))


@allow(*DECIDERS)
async def approve_request(request: web.Request) -> web.Response:
    return await _decide(request, True)


@allow(*DECIDERS)
async def decline_request(request: web.Request) -> web.Response:
    return await _decide(request, False)


def _owner_id(principal: Principal) -> str:
    if not principal.owner_id:
        raise error(409, "this account is not linked to an owner")
    return principal.owner_id


@allow(Role.OWNER)
async def get_policy(request: web.Request) -> web.Response:
    principal = require_principal(request)
    policy = await evidence_core(request).requests.policy(_owner_id(principal))
    return web.json_response(policy.as_json())


@allow(Role.OWNER)
async def set_policy(request: web.Request) -> web.Response:
    core = evidence_core(request)
    principal = require_principal(request)
    owner_id = _owner_id(principal)
    fields = await read_json(request)
    mode = fields.get("mode")
    if mode not in ("manual", "auto_approve"):
        raise error(400, "mode must be 'manual' or 'auto_approve'")
    max_hours = fields.get("max_hours")
    if max_hours is not None and (
        not isinstance(max_hours, int | float) or isinstance(max_hours, bool)
        or not 0 < max_hours <= 24 * 7
    ):
        raise error(400, "max_hours must be empty or between 0 and 168")
    policy = OwnerPolicy(owner_id, str(mode), None if max_hours is None else float(max_hours))
    await audit(request, principal, "footage_policy.change", target=f"owner:{owner_id}",
                owner_id=owner_id, details=policy.as_json())
    await core.requests.set_policy(policy, principal.username, clock_of(request)())
    return web.json_response(policy.as_json())


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/footage-requests", create_request)
    app.router.add_get("/api/footage-requests", list_requests)
    app.router.add_get("/api/footage-requests/{request_id}", get_request)
    app.router.add_post("/api/footage-requests/{request_id}/approve", approve_request)
    app.router.add_post("/api/footage-requests/{request_id}/decline", decline_request)
    app.router.add_get("/api/footage-policy", get_policy)
    app.router.add_put("/api/footage-policy", set_policy)
