"""The owner's own part of the catalog: their profile, sites and cameras.

Every route is for the ``owner`` role and touches only records whose ``owner_id`` is the
logged-in owner's; another owner's camera or site answers 404, exactly like one that does not
exist. Owners choose what the department may do (sharing level, time windows, PTZ) but not what
the department decides (``owner_id``, ``preload``, ``record``).

``GET|PUT  /api/owner/profile``               organisation and contact details
``GET|POST /api/owner/sites``                 sites (address, soft target)
``PATCH|DELETE /api/owner/sites/{id}``
``GET|POST /api/owner/cameras``               cameras (plain objects, never passwords)
``GET|PATCH|DELETE /api/owner/cameras/{id}``
``POST /api/owner/cameras/{id}/transfer``     offer a camera to another owner ({"to_owner"});
                                              also for administrators, for any camera
``GET  /api/owner/transfers``                 offers to and from this owner
``POST /api/owner/transfers/{id}/accept|decline``

A directly reached camera gets an id made by the server and its stream URLs must pass
``security.check_camera_url`` without the department's private-network allowlist, both here and
each time the server connects (the camera records that the owner registered its addresses): a
camera on the owner's own network is reached through the owner's agent. A stream address already
registered for another owner (or the department) is refused with 409, without saying whose it
is. A camera changes owner only when the new owner accepts an offer in their own session; then
its open views end. A camera reached through the owner's agent keeps the id the
agent server gave it (``AGENTID-HASH``) and must belong to one of the owner's agents: the agent's
account, ``agent-AGENTID``, is scoped to the same owner. Every consent change is audited; a change
that narrows what viewers may do ends the camera's open sessions at once
(``security.consent_changed``). Refusals are ``{"error", "field", "allowed"}``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from catalog.api import json_errors
from catalog.consent_changes import audit, record_consent
from catalog.errors import FieldError
from catalog.keys import CATALOG_EVENTS, CATALOG_STORE
from catalog.model import (
    Camera,
    Registrar,
    Site,
    TransferOffer,
    camera_public,
    owner_record,
    site_record,
    stream_urls,
)
from catalog.owner_registry import contact_owner
from catalog.query import MAX_PAGE, Filters
from catalog.store import CatalogStore
from catalog.validate import (
    READ_ONLY_FIELDS,
    REF_ID,
    StreamAddress,
    parse_camera,
    registered,
    stream_address,
)
from rtcc.appkeys import AGENT_ACCOUNTS, SECRET_BOX, SETTINGS
from rtcc.camera_url import check_camera_url
from rtcc.cameras import is_camera_id
from rtcc.config import SharingLevel
from rtcc.errors import UnsafeUrl
from rtcc.http import read_body, required
from rtcc.owners import FieldProblem, parse_contact
from rtcc.policy import Role, allow
from rtcc.principal import require_principal

log = logging.getLogger(__name__)

owner_only = allow(Role.OWNER)
owner_or_admin = allow(Role.OWNER, Role.ADMIN)
OWNER_FIELDS = frozenset({"name", "lat", "lon", "site_id", "heading", "fov", "range_m", "kind",
                          "sharing", "windows", "timezone", "ptz_allowed", "via_agent",
                          "profiles"})
DEPARTMENT_FIELDS = ("owner_id", "preload", "record")
"""Sent back unchanged (a GET body may be PATCHed again) or refused."""
MAX_SITES = 200
_LEVELS = tuple(SharingLevel)
_AGENT_CAMERA = re.compile(r"(a[0-9a-f]{8})-[0-9a-f]{10}")
_SITE_ID = re.compile(r"site-[0-9a-f]{10}")
_LIVE = frozenset({SharingLevel.LIVE_EMERGENCY, SharingLevel.LIVE_ALWAYS})
_ALLOWLIST_ADVICE = "; reach this camera through the owner's agent or ask an administrator to " \
    "allowlist its network"
_OWNER_ADVICE = "; the server reaches an owner's camera only at a public address: connect a " \
    "camera on your own network through your agent"


def _error(status: int, reason: str, field: str = "", allowed: str = "") -> web.Response:
    return web.json_response({"error": reason, "field": field, "allowed": allowed},
                             status=status)


def _owner_id(request: web.Request) -> str:
    principal = require_principal(request)
    if not principal.owner_id:
        raise web.HTTPConflict(text='{"error": "this account is not linked to an owner"}',
                               content_type="application/json")
    return principal.owner_id


def _store(request: web.Request) -> CatalogStore:
    return request.config_dict[CATALOG_STORE]


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = json.loads(await read_body(request))
    except (ValueError, UnicodeDecodeError):
        raise FieldError("body", "not valid JSON", "a JSON object") from None
    if not isinstance(data, dict):
        raise FieldError("body", "must be a JSON object", "camera fields")
    return data


async def _publish(request: web.Request, event: dict[str, Any]) -> None:
    bus = request.config_dict.get(CATALOG_EVENTS)
    if bus is not None:
        await bus.publish(event)


# -- profile ----------------------------------------------------------------------------------


@owner_only
@json_errors
async def get_profile(request: web.Request) -> web.Response:
    owner_id = _owner_id(request)
    owner = await _store(request).get_owner(owner_id)
    principal = require_principal(request)
    return web.json_response({
        "owner_id": owner_id, "username": principal.username,
        "owner": owner_record(owner) if owner is not None else None,
    })


@owner_only
@json_errors
async def put_profile(request: web.Request) -> web.Response:
    owner_id = _owner_id(request)
    try:
        owner = contact_owner(parse_contact(await _body(request)), owner_id)
    except FieldProblem as exc:
        raise FieldError(exc.field, str(exc)) from None
    await _store(request).put_owner(owner)
    await audit(request, "owner.profile", target=f"owner:{owner_id}", owner_id=owner_id)
    return web.json_response({"owner_id": owner_id, "owner": owner_record(owner)})


# -- sites ------------------------------------------------------------------------------------


async def _own_sites(request: web.Request, owner_id: str) -> list[Site]:
    return [site for site in await _store(request).list_sites() if site.owner_id == owner_id]


async def _own_site(request: web.Request, owner_id: str) -> Site:
    site = await _store(request).get_site(request.match_info["id"])
    if site is None or site.owner_id != owner_id:
        raise web.HTTPNotFound(text='{"error": "no such site", "field": "id"}',
                               content_type="application/json")
    return site


def _site_fields(fields: Mapping[str, Any], site: Site) -> Site:
    for key in fields:
        if key not in ("address", "soft_target", "id", "owner_id", "outline"):
            raise FieldError(str(key)[:64], "unknown field", "address, soft_target")
    address = fields.get("address", site.address)
    if not isinstance(address, str) or not 1 <= len(address.strip()) <= 300 or any(
        ord(ch) < 32 for ch in address
    ):
        raise FieldError("address", "is required", "1..300 printable characters")
    soft = fields.get("soft_target", site.soft_target)
    if not isinstance(soft, bool):
        raise FieldError("soft_target", "must be true or false", "true, false")
    return dataclasses.replace(site, address=address.strip(), soft_target=soft)


@owner_only
@json_errors
async def list_sites(request: web.Request) -> web.Response:
    sites = await _own_sites(request, _owner_id(request))
    return web.json_response({"sites": [site_record(site) for site in sites]})


@owner_only
@json_errors
async def create_site(request: web.Request) -> web.Response:
    owner_id = _owner_id(request)
    if len(await _own_sites(request, owner_id)) >= MAX_SITES:
        return _error(409, f"at most {MAX_SITES} sites per owner", "id")
    site = _site_fields(await _body(request),
                        Site(id="site-" + secrets.token_hex(5), owner_id=owner_id))
    await _store(request).put_site(site)
    await audit(request, "site.create", target=f"site:{site.id}", owner_id=owner_id)
    return web.json_response(site_record(site), status=201)


@owner_only
@json_errors
async def patch_site(request: web.Request) -> web.Response:
    owner_id = _owner_id(request)
    site = _site_fields(await _body(request), await _own_site(request, owner_id))
    await _store(request).put_site(site)
    return web.json_response(site_record(site))


@owner_only
@json_errors
async def delete_site(request: web.Request) -> web.Response:
    owner_id = _owner_id(request)
    site = await _own_site(request, owner_id)
    cameras = await _own_cameras(request, owner_id)
    if any(camera.site_id == site.id for camera in cameras):
        return _error(409, "cameras are registered at this site; move or remove them first",
                      "id")
    await _store(request).delete_site(site.id)
    await audit(request, "site.delete", target=f"site:{site.id}", owner_id=owner_id)
    return web.Response(status=204)


# -- cameras ----------------------------------------------------------------------------------


async def _own_cameras(request: web.Request, owner_id: str) -> list[Camera]:
    store = _store(request)
    filters = Filters(owner=frozenset({owner_id}))
    cameras: list[Camera] = []
    after = ""
    while True:
        page = await store.list_cameras(filters, after=after, limit=MAX_PAGE)
        cameras += page
        if len(page) < MAX_PAGE:
            return cameras
        after = page[-1].id


async def _own_camera(request: web.Request, owner_id: str) -> Camera:
    camera_id = request.match_info["id"]
    camera = await _store(request).get(camera_id)
    if camera is None or camera.owner_id != owner_id:
        raise web.HTTPNotFound(text='{"error": "no such camera of yours", "field": "id"}',
                               content_type="application/json")
    return camera


def _camera_json(camera: Camera) -> dict[str, Any]:
    return camera_public(camera, urls=True)


def _owner_fields(fields: Mapping[str, Any], owner_id: str,
                  before: Camera | None) -> dict[str, Any]:
    """The fields an owner may write; department fields only when unchanged."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key in OWNER_FIELDS:
            out[key] = value
        elif key == "owner_id":
            if value not in (None, "", owner_id):
                raise FieldError("owner_id", "you can register cameras only for yourself",
                                 owner_id)
        elif key in DEPARTMENT_FIELDS:
            current = getattr(before, key) if before is not None else False
            if value not in (None, "", current):
                raise FieldError(key, "is set by the department", str(current).lower())
        elif key not in READ_ONLY_FIELDS and key != "id":
            raise FieldError(str(key)[:64], "unknown field", ", ".join(sorted(OWNER_FIELDS)))
    # Sharing hours read in a silent UTC default would be hours off for most owners.
    if out.get("timezone", "-") in (None, "") or (
            before is None and out.get("windows") and "timezone" not in out):
        raise FieldError("timezone", "the time zone of the sharing hours is required",
                         "an IANA zone such as America/Chicago")
    return out


async def _agent_owner(request: web.Request, camera_id: str) -> str | None:
    """The owner of the agent that reported ``camera_id``, if it is an agent camera id."""
    match = _AGENT_CAMERA.fullmatch(camera_id)
    if match is None:
        return None
    accounts = required(request, AGENT_ACCOUNTS, "the security core")
    return await accounts.owner_of_agent(match[1])


async def _check_urls(request: web.Request, camera: Camera) -> None:
    if camera.via_agent:
        if camera.profiles:
            raise FieldError("profiles", "a camera reached through your agent has no URL here: "
                             "the agent keeps it", "no profiles")
        return
    if camera.sharing in _LIVE and not camera.profiles:
        raise FieldError("profiles.main.url", "live sharing needs the camera's stream URL or "
                         "your agent", "an rtsp:// URL, or choose 'through my agent'")
    # The department's allowlist covers its own camera network, never an owner's registration.
    by_owner = camera.registered_by == Registrar.OWNER
    allowed = () if by_owner else \
        request.config_dict[SETTINGS].security.allow_private_camera_hosts
    for name, profile in camera.profiles.items():
        try:
            await check_camera_url(profile.url, allow_networks=allowed)
        except UnsafeUrl as exc:
            reason = str(exc).replace(_ALLOWLIST_ADVICE, _OWNER_ADVICE) if by_owner else str(exc)
            raise FieldError(f"profiles.{name}.url", reason,
                             "a camera address the server may reach") from None


async def _check_unclaimed(request: web.Request, camera: Camera) -> None:
    """Refuse (409) a stream address that is already registered for someone else, without
    saying whose it is."""
    mine: dict[StreamAddress, str] = {
        stream_address(url): name for name, url in stream_urls(camera).items()}
    if not mine:
        return
    async for other in _store(request).iter_cameras():
        if other.owner_id == camera.owner_id or other.id == camera.id:
            continue
        for url in stream_urls(other).values():
            name = mine.get(stream_address(url))
            if name is not None:
                log.info("owner %s: stream address of profile %s is already registered as "
                         "camera %s", camera.owner_id, name, other.id)
                raise web.HTTPConflict(text=json.dumps({
                    "error": "this stream address is already registered, so it cannot be "
                             "registered again; if the camera is yours, ask the department "
                             "to transfer it to you",
                    "field": f"profiles.{name}.url",
                    "allowed": "the address of a camera not yet registered"}),
                    content_type="application/json")


async def _check_site(request: web.Request, camera: Camera, owner_id: str) -> None:
    if not camera.site_id:
        return
    site = await _store(request).get_site(camera.site_id)
    if site is None or site.owner_id != owner_id:
        raise FieldError("site_id", "not one of your sites", "one of your site ids, or empty")


@owner_only
@json_errors
async def list_cameras(request: web.Request) -> web.Response:
    cameras = await _own_cameras(request, _owner_id(request))
    return web.json_response({"cameras": [_camera_json(camera) for camera in cameras]})


@owner_only
@json_errors
async def get_camera(request: web.Request) -> web.Response:
    return web.json_response(_camera_json(await _own_camera(request, _owner_id(request))))


@owner_only
@json_errors
async def create_camera(request: web.Request) -> web.Response:
    owner_id = _owner_id(request)
    body = await _body(request)
    fields = _owner_fields(body, owner_id, None)
    requested = body.get("id")
    fields.update(id="cam-" + secrets.token_hex(6), owner_id=owner_id)
    camera = parse_camera(fields, request.config_dict.get(SECRET_BOX))
    if camera.via_agent:
        if not isinstance(requested, str) or await _agent_owner(request, requested) != owner_id:
            raise FieldError("id", "not a camera reported by one of your agents",
                             "the camera_id of a camera your agent found")
        camera = dataclasses.replace(camera, id=requested)
    elif requested not in (None, ""):
        raise FieldError("id", "is given by the server", "no id")
    camera = dataclasses.replace(camera, registered_by=Registrar.OWNER,
                                 owner_sharing=camera.sharing)
    await _check_site(request, camera, owner_id)
    await _check_urls(request, camera)
    await _check_unclaimed(request, camera)
    await _store(request).create(camera)
    await record_consent(request, None, camera.consent())
    await _publish(request, {"type": "camera.created", "id": camera.id,
                             "camera": camera_public(camera, urls=False)})
    response = web.json_response({"camera": _camera_json(camera), "sessions_ended": 0},
                                 status=201)
    response.headers["Location"] = f"/api/owner/cameras/{camera.id}"
    return response


@owner_only
@json_errors
async def patch_camera(request: web.Request) -> web.Response:
    owner_id = _owner_id(request)
    before = await _own_camera(request, owner_id)
    body = await _body(request)
    if body.get("id", before.id) != before.id:
        raise FieldError("id", "cannot be changed", before.id)
    changes = _owner_fields(body, owner_id, before)
    if "via_agent" in changes and bool(changes["via_agent"]) != before.via_agent:
        raise FieldError("via_agent", "cannot be changed; remove the camera and register it "
                         "again", str(before.via_agent).lower())
    fields = camera_public(before, urls=True)
    for profile in fields["profiles"].values():
        profile.pop("has_password", None)  # a stored password is kept unless a new one is sent
    fields.update(changes)
    camera = parse_camera({k: v for k, v in fields.items() if k not in READ_ONLY_FIELDS},
                          request.config_dict.get(SECRET_BOX), before)
    camera = registered(camera, before, Registrar.OWNER)
    if camera.sharing != before.sharing:  # the owner's choice, which staff cannot exceed
        camera = dataclasses.replace(camera, owner_sharing=camera.sharing)
    await _check_site(request, camera, owner_id)
    if camera.profiles != before.profiles or camera.sharing != before.sharing:
        await _check_urls(request, camera)
    if stream_urls(camera) != stream_urls(before):
        await _check_unclaimed(request, camera)
    await _store(request).put(camera)
    ended = await record_consent(request, before.consent(), camera.consent())
    await _publish(request, {"type": "camera.updated", "id": camera.id,
                             "camera": camera_public(camera, urls=False)})
    return web.json_response({"camera": _camera_json(camera), "sessions_ended": ended})


@owner_only
@json_errors
async def delete_camera(request: web.Request) -> web.Response:
    owner_id = _owner_id(request)
    camera = await _own_camera(request, owner_id)
    before = camera.consent()
    withdrawn = dataclasses.replace(before, sharing=SharingLevel.REGISTRY_ONLY, windows=(),
                                    ptz_allowed=False)
    await _store(request).delete(camera.id)
    ended = await record_consent(request, before, withdrawn)
    await audit(request, "camera.delete", camera_id=camera.id, owner_id=owner_id,
           details={"name": camera.name})
    await _publish(request, {"type": "camera.deleted", "id": camera.id})
    return web.json_response({"deleted": camera.id, "sessions_ended": ended})


# -- transfers --------------------------------------------------------------------------------


def _transfer_json(camera: Camera, offer: TransferOffer) -> dict[str, Any]:
    """What both sides see of an offer: enough to decide, never the camera's addresses."""
    return {"id": offer.id, "camera_id": camera.id, "camera_name": camera.name,
            "from_owner": camera.owner_id, "to_owner": offer.to_owner,
            "offered_by": offer.offered_by, "offered_at": offer.offered_at,
            "sharing": str(camera.sharing), "kind": str(camera.kind),
            "lat": camera.lat, "lon": camera.lon}


def _no_transfer() -> web.HTTPNotFound:
    return web.HTTPNotFound(text='{"error": "no such transfer offered to you", "field": "id"}',
                            content_type="application/json")


@owner_or_admin
@json_errors
async def offer_transfer(request: web.Request) -> web.Response:
    """The current owner, or an administrator, offers a camera to another owner."""
    principal = require_principal(request)
    store = _store(request)
    if principal.role == Role.ADMIN:
        camera = await store.get(request.match_info["id"])
        if camera is None:
            raise web.HTTPNotFound(text='{"error": "no such camera", "field": "id"}',
                                   content_type="application/json")
    else:
        camera = await _own_camera(request, _owner_id(request))
    body = await _body(request)
    for key in body:
        if key != "to_owner":
            raise FieldError(str(key)[:64], "unknown field", "to_owner")
    to_owner = body.get("to_owner")
    if not isinstance(to_owner, str) or not REF_ID.fullmatch(to_owner) \
            or await store.get_owner(to_owner) is None:
        raise FieldError("to_owner", "no such owner", "the owner id of the registered owner "
                         "who is to accept the camera")
    if to_owner == camera.owner_id:
        raise FieldError("to_owner", "already owns this camera", "another owner's id")
    if camera.via_agent:
        raise FieldError("id", "a camera reached through an agent stays with the agent's "
                         "owner; the new owner registers it through their own agent",
                         "a camera reached directly or registered for its location only")
    offer = TransferOffer(id=f"{camera.id}.{secrets.token_hex(8)}", to_owner=to_owner,
                          offered_by=principal.username, offered_at=time.time())
    await store.put(dataclasses.replace(camera, transfer=offer))
    await audit(request, "camera.transfer.offer", target=f"owner:{to_owner}", camera_id=camera.id,
                owner_id=camera.owner_id, details={"transfer": offer.id, "to_owner": to_owner})
    return web.json_response({"transfer": _transfer_json(camera, offer)}, status=201)


@owner_only
@json_errors
async def list_transfers(request: web.Request) -> web.Response:
    owner_id = _owner_id(request)
    incoming: list[dict[str, Any]] = []
    outgoing: list[dict[str, Any]] = []
    async for camera in _store(request).iter_cameras():
        offer = camera.transfer
        if offer is None:
            continue
        if offer.to_owner == owner_id:
            incoming.append(_transfer_json(camera, offer))
        elif camera.owner_id == owner_id:
            outgoing.append(_transfer_json(camera, offer))
    return web.json_response({"incoming": incoming, "outgoing": outgoing})


async def _offer(request: web.Request) -> tuple[Camera, TransferOffer]:
    transfer_id = request.match_info["id"]
    camera_id = transfer_id.partition(".")[0]
    camera = await _store(request).get(camera_id) if is_camera_id(camera_id) else None
    if camera is None or camera.transfer is None or camera.transfer.id != transfer_id:
        raise _no_transfer()
    return camera, camera.transfer


@owner_only
@json_errors
async def accept_transfer(request: web.Request) -> web.Response:
    """The new owner takes the camera as offered; its open views end."""
    owner_id = _owner_id(request)
    before, offer = await _offer(request)
    if offer.to_owner != owner_id:
        raise _no_transfer()
    # The new owner's choice is the camera as offered; the old owner's site is not theirs.
    camera = dataclasses.replace(before, owner_id=owner_id, site_id="", transfer=None,
                                 owner_sharing=before.sharing)
    await _store(request).put(camera)
    await audit(request, "camera.transfer.accept", target=f"owner:{before.owner_id}",
                camera_id=camera.id, owner_id=owner_id,
                details={"transfer": offer.id, "from_owner": before.owner_id,
                         "offered_by": offer.offered_by})
    ended = await record_consent(request, before.consent(), camera.consent())
    await _publish(request, {"type": "camera.updated", "id": camera.id,
                             "camera": camera_public(camera, urls=False)})
    return web.json_response({"camera": _camera_json(camera), "sessions_ended": ended})


@owner_only
@json_errors
async def decline_transfer(request: web.Request) -> web.Response:
    """The offered owner declines, or the current owner withdraws the offer."""
    owner_id = _owner_id(request)
    camera, offer = await _offer(request)
    if owner_id not in (offer.to_owner, camera.owner_id):
        raise _no_transfer()
    await _store(request).put(dataclasses.replace(camera, transfer=None))
    await audit(request, "camera.transfer.decline", target=f"owner:{offer.to_owner}",
                camera_id=camera.id, owner_id=camera.owner_id,
                details={"transfer": offer.id, "to_owner": offer.to_owner})
    return web.json_response({"declined": offer.id})


def add_owner_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/api/owner/profile", get_profile)
    router.add_put("/api/owner/profile", put_profile)
    router.add_get("/api/owner/sites", list_sites)
    router.add_post("/api/owner/sites", create_site)
    router.add_patch("/api/owner/sites/{id}", patch_site)
    router.add_delete("/api/owner/sites/{id}", delete_site)
    router.add_get("/api/owner/cameras", list_cameras)
    router.add_post("/api/owner/cameras", create_camera)
    router.add_get("/api/owner/cameras/{id}", get_camera)
    router.add_patch("/api/owner/cameras/{id}", patch_camera)
    router.add_delete("/api/owner/cameras/{id}", delete_camera)
    router.add_post("/api/owner/cameras/{id}/transfer", offer_transfer)
    router.add_get("/api/owner/transfers", list_transfers)
    router.add_post("/api/owner/transfers/{id}/accept", accept_transfer)
    router.add_post("/api/owner/transfers/{id}/decline", decline_transfer)


__all__ = ["add_owner_routes"]
