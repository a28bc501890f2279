"""Export, download, legal hold and recording routes.

- ``POST /api/exports`` (investigator, supervisor, admin): ``{"camera", "from", "to", "case",
  "reason", "watermark": bool, "incident"}`` -> ``201 {"id": <download token, shown once>,
  "download", "expires_at", "sha256", "grant", ...}``. Other roles are refused by the policy
  and the refusal is audited (``access.denied``). The footage of an owner's camera needs one
  grant covering the whole range (``_export_grant``), whatever the role; the department's own
  cameras export freely. The grant is named in the audit entries and the manifest.
- ``GET /api/exports/{id}/download``: the package, for its creator (or a supervisor or
  administrator), until it expires and while the grant it was made under still allows it
  (``_grant_lapsed``); a refusal is audited. The id is looked up as a token, never used as a
  path.
- ``GET /api/exports``: your exports (all of them for supervisors and administrators).
- ``POST /api/holds``, ``GET /api/holds``, ``POST /api/holds/{id}/release``: legal holds.
- ``GET /api/recordings``: recorded segments (``?camera=``, ``?incident=``, ``?limit=``): an
  owner's camera's only as far as a grant of the caller covers them (as for exports);
  ``GET /api/recordings/status``: the recorders.
- ``GET /api/evidence/public-key``: the key that signs every export (public).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import sqlite3
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from evidence import exports
from evidence.context import EvidenceCore
from evidence.export import COMMAND_LINE, ExportError, ExportGrant, ExportRequest, NoFootage
from evidence.ffmpeg import FfmpegError
from evidence.httpio import CAMERA_ID, CASE_NUMBER, audit, evidence_core, text, time_range
from evidence.manifest import Progress
from evidence.store import EvidenceStore
from recording.holds import add_hold, get_hold, list_holds, release_hold
from recording.segments import UnsafePath
from rtcc.access import CameraConsent
from rtcc.appkeys import CAMERA_DIRECTORY, FOOTAGE_GRANTS, clock_of
from rtcc.config import SharingLevel
from rtcc.consent import in_windows, window_end
from rtcc.errors import RtccError, StoreUnavailable
from rtcc.http import error, read_json, required
from rtcc.policy import Role, allow, public, staff
from rtcc.principal import Principal, require_principal

EXPORTERS = (Role.INVESTIGATOR, Role.SUPERVISOR, Role.ADMIN)
SEES_ALL = frozenset({Role.SUPERVISOR, Role.ADMIN})
HOLD_ID = re.compile(r"^hold-[0-9a-f]{12}$")
SEND_CHUNK = 256 * 1024
DEPARTMENT = "department"
"""The ``owner_id`` of the department's own cameras (the catalog's and the configuration's
default)."""
INCIDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


@dataclass(frozen=True, slots=True)
class CameraFacts:
    owner_id: str
    name: str
    consent: CameraConsent | None
    """What the owner allows now (the catalog's entry, else the configuration's)."""

    @property
    def department(self) -> bool:
        return self.owner_id == DEPARTMENT


async def _camera_facts(request: web.Request, core: EvidenceCore, camera_id: str
                        ) -> CameraFacts | None:
    """Owner, name and consent from the catalog, else from the configuration; None when the
    camera is in neither (whose footage it is cannot be told), 503 when the catalog fails."""
    configured = next((c for c in core.settings.cameras if c.id == camera_id), None)
    consent = None
    directory = request.config_dict.get(CAMERA_DIRECTORY)
    if directory is not None:
        try:
            async with asyncio.timeout(5.0):
                consent = await directory.consent_of(camera_id)
        except (TimeoutError, StoreUnavailable) as exc:
            raise error(503, f"the camera catalog cannot be read ({str(exc) or 'no answer'}), so "
                             f"the grants of camera {camera_id} cannot be checked; try again "
                             "shortly") from None
    name = configured.name if configured else ""
    if consent is not None:
        return CameraFacts(consent.owner_id, name, consent)
    if configured is not None:
        return CameraFacts(configured.owner, name, CameraConsent(
            camera_id, configured.owner, configured.sharing, tuple(configured.windows)))
    return None


def _span(start: float, end: float, timezone: str) -> str:
    """``14:05:00-14:20:00 on 2024-05-01 (Europe/Paris)``: a range as the owner reads it."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone, timezone = ZoneInfo("UTC"), "UTC"
    first = dt.datetime.fromtimestamp(start, tz=zone)
    last = dt.datetime.fromtimestamp(end, tz=zone)
    if first.date() == last.date():
        return f"{first:%H:%M:%S}-{last:%H:%M:%S} on {first:%Y-%m-%d} ({timezone})"
    return f"{first:%Y-%m-%d %H:%M:%S} to {last:%Y-%m-%d %H:%M:%S} ({timezone})"


def _windows_cover(consent: CameraConsent, start: float, end: float) -> bool:
    """True when the owner's sharing windows hold every moment of ``start``..``end``."""
    if not consent.windows:
        return True
    try:
        if not in_windows(consent.windows, consent.timezone, start):
            return False
        until = window_end(consent.windows, consent.timezone, start)
    except (ZoneInfoNotFoundError, ValueError):
        return False  # an unknown time zone: the windows cannot be checked
    return until is not None and until >= end


async def _export_grant(request: web.Request, principal: Principal, camera_id: str,
                        facts: CameraFacts | None, start: float, end: float, incident: str
                        ) -> ExportGrant | None:
    """The one grant allowing ``principal`` the recorded footage ``start``..``end`` of the
    camera, checked in order: the department's own camera; a ``recorded`` grant to the user
    (an approved footage request) covering the range; the named incident's grant on the
    camera, valid over the whole range; the owner's ``live_always`` sharing, with windows
    covering the range. None when none does, or the camera is unknown."""
    if facts is None:
        return None
    if facts.department:
        return ExportGrant("department", f"department:{camera_id}")
    grants = required(request, FOOTAGE_GRANTS, "the security core")
    recorded = await grants.recorded_grant_for(camera_id, principal.user_id, start, end,
                                               clock_of(request)())
    if recorded is not None:
        return ExportGrant("recorded", recorded)
    if incident:
        by_incident = await grants.incident_grant_for(camera_id, incident, start, end)
        if by_incident is not None:
            return ExportGrant("incident", by_incident)
    consent = facts.consent
    if (consent is not None and consent.sharing == SharingLevel.LIVE_ALWAYS
            and _windows_cover(consent, start, end)):
        return ExportGrant("sharing", f"sharing:{camera_id}")
    return None


async def _grant_lapsed(request: web.Request, core: EvidenceCore, record: exports.ExportRecord,
                        now: float) -> str | None:
    """Why the grant an export was made under no longer allows its download, or None when it
    still does: a ``recorded`` grant revoked or past its validity, an ``incident`` grant the
    owner withdrew, ``sharing`` the owner no longer gives over the range. ``department`` and
    ``command_line`` exports stay downloadable."""
    kind = record.grant_kind
    if kind in (DEPARTMENT, COMMAND_LINE):
        return None
    if kind in ("recorded", "incident"):
        standing = await required(request, FOOTAGE_GRANTS,
                                  "the security core").grant_standing(record.grant_id)
        if standing is None or standing.camera_id != record.camera_id:
            return (f"the grant this export was made under ({record.grant_id}) no longer "
                    "exists; export again under a valid grant")
        if kind == "incident":
            return None if not standing.withdrawn else (
                f"the owner revoked the grant this export was made under ({record.grant_id})")
        if standing.revoked:
            return f"the owner revoked the grant this export was made under ({record.grant_id})"
        if standing.valid_until is not None and standing.valid_until <= now:
            return (f"the grant this export was made under ({record.grant_id}) has expired; "
                    "ask the owner again with a footage request")
        return None
    if kind == "sharing" and record.range_start is not None and record.range_end is not None:
        facts = await _camera_facts(request, core, record.camera_id)
        consent = facts.consent if facts is not None else None
        if (consent is not None and consent.sharing == SharingLevel.LIVE_ALWAYS
                and _windows_cover(consent, record.range_start, record.range_end)):
            return None
        return ("the owner no longer shares this camera's footage over the exported range, "
                "the grant this export was made under")
    return "this export names no grant that can be checked again; export it again"


def _no_grant(camera_id: str, facts: CameraFacts | None, start: float, end: float,
              incident: str) -> str:
    """Why an export is refused, and what to ask for."""
    if facts is None:
        return (f"camera {camera_id} is not registered, so whose footage this is cannot be "
                "checked; register it again (with its owner) before exporting")
    timezone = facts.consent.timezone if facts.consent is not None else "UTC"
    reason = (f"no grant covers {_span(start, end, timezone)} on camera {camera_id}: ask the "
              "owner with a footage request")
    if incident:
        reason += (f" (incident {incident!r} holds no grant on this camera for the whole "
                   "range)")
    else:
        reason += (", or name the incident the camera was opened for ('incident') if the "
                   "footage was recorded then")
    return reason


def _footage_fields(fields: dict[str, Any]) -> tuple[str, float, float, str, str]:
    """(camera, from, to, case, reason) of an export or a legal hold."""
    camera_id = text(fields, "camera", limit=64, required=True, pattern=CAMERA_ID)
    start, end = time_range(fields)
    case = text(fields, "case", limit=64, required=True, pattern=CASE_NUMBER)
    reason = text(fields, "reason", limit=300)
    return camera_id, start, end, case, reason


def _camera_query(request: web.Request) -> str | None:
    """The ``camera`` a listing is narrowed to, if any."""
    camera = request.query.get("camera") or None
    if camera is not None and not CAMERA_ID.fullmatch(camera):
        raise error(400, "camera must be a camera id")
    return camera


async def _allowed_requests(core: EvidenceCore, principal: Principal) -> frozenset[str] | None:
    if principal.role in SEES_ALL:
        return None
    rows = await core.store.call(EvidenceStore.fetchall,
                                 "SELECT id FROM footage_requests WHERE requester_id = ?",
                                 (principal.user_id,))
    return frozenset(str(row["id"]) for row in rows)


@dataclass(frozen=True, slots=True)
class ExportPlan:
    """An export allowed and audited as started: what ``produce_export`` makes."""

    camera_id: str
    start: float
    end: float
    case: str
    owner: str
    grant: ExportGrant
    asked: dict[str, Any]
    job: ExportRequest


async def plan_export(request: web.Request, core: EvidenceCore, principal: Principal, *,
                      camera_id: str, start: float, end: float, case: str, reason: str,
                      incident: str, watermark: bool) -> ExportPlan:
    """Check the grant for one camera's export and audit its start; 403 (audited) when no grant
    covers the range."""
    facts = await _camera_facts(request, core, camera_id)
    owner = facts.owner_id if facts is not None else ""
    asked: dict[str, Any] = {"case": case, "start": start, "end": end, "watermark": watermark,
                             "reason": reason, "incident": incident}
    grant = await _export_grant(request, principal, camera_id, facts, start, end, incident)
    if grant is None:
        why = _no_grant(camera_id, facts, start, end, incident)
        await audit(request, principal, "evidence.export", camera_id=camera_id, owner_id=owner,
                    outcome="refused", details={**asked, "refused": why}, refusal=None)
        raise error(403, why)
    asked["grant"] = grant.as_json()
    await audit(request, principal, "evidence.export", camera_id=camera_id, owner_id=owner,
                outcome="started", details=asked)
    job = ExportRequest(camera_id=camera_id, start=start, end=end, case=case,
                        requester=principal.username, requester_role=str(principal.role),
                        owner_id=owner, camera_name=facts.name if facts else "",
                        watermark=watermark,
                        reason=reason, allowed_requests=await _allowed_requests(core, principal),
                        grant=grant, within_range=grant.kind != "department")
    return ExportPlan(camera_id, start, end, case, owner, grant, asked, job)


def _no_progress(stage: str, fraction: float) -> None:  # noqa: ARG001 -- a Progress callback
    return None


async def produce_export(request: web.Request, core: EvidenceCore, principal: Principal,
                         plan: ExportPlan, progress: Progress = _no_progress) -> dict[str, Any]:
    """Make the planned package (one at a time), register its download and hold its range;
    the answer of ``POST /api/exports``. 404/422 (audited) when it cannot be made."""
    camera_id, owner, asked, grant = plan.camera_id, plan.owner, plan.asked, plan.grant
    try:
        async with core.export_slots:
            result = await asyncio.to_thread(core.exporter.export, plan.job, None, progress)
    except (ExportError, FfmpegError, UnsafePath, OSError) as exc:
        message = str(exc) if isinstance(exc, RtccError) else f"export failed: {exc}"
        await audit(request, principal, "evidence.export", camera_id=camera_id, owner_id=owner,
                    outcome="failed", details={**asked, "error": message}, refusal=None)
        raise error(404 if isinstance(exc, NoFootage) else 422, message) from None
    clock = clock_of(request)
    now = clock()
    expires = now + core.settings.evidence.export_link_hours * 3600.0
    token = await core.store.call(
        exports.register, export_id=result.export_id, file_name=result.package.name,
        camera_id=camera_id, case_number=plan.case, created_by=principal.username,
        created_by_id=principal.user_id, now=now, expires_at=expires, size=result.bytes,
        sha256=result.sha256, grant_kind=grant.kind, grant_id=grant.id,
        range_start=plan.start, range_end=plan.end)
    hold = await core.store.call(add_hold, camera_id=camera_id, case_number=plan.case,
                                 start=result.clip_start, end=result.clip_end,
                                 reason=f"export {result.export_id}",
                                 created_by=principal.username, now=now)
    await audit(request, principal, "evidence.export", target=f"export:{result.export_id}",
                camera_id=camera_id, owner_id=owner, refusal=None,
                details={**asked, "export_id": result.export_id, "sha256": result.sha256,
                   "bytes": result.bytes, "frames": result.frames,
                   "segments": list(result.segment_ids), "hold": hold.id,
                   "key_fingerprint": core.key.fingerprint})
    await core.store.call(exports.purge_expired, core.root, now)
    return {
        "id": token, "export_id": result.export_id,
        "download": f"/api/exports/{token}/download", "expires_at": expires,
        "sha256": result.sha256, "bytes": result.bytes, "frames": result.frames,
        "grant": grant.as_json(), "clip_start": result.clip_start, "clip_end": result.clip_end,
        "segments": list(result.segment_ids), "hold": hold.id,
        "key_fingerprint": core.key.fingerprint,
    }


@allow(*EXPORTERS)
async def create_export(request: web.Request) -> web.Response:
    core = evidence_core(request)
    principal = require_principal(request)
    fields = await read_json(request)
    camera_id, start, end, case, reason = _footage_fields(fields)
    incident = text(fields, "incident", limit=64, pattern=INCIDENT_ID)
    watermark = fields.get("watermark", False)
    if not isinstance(watermark, bool):
        raise error(400, "watermark must be true or false")
    plan = await plan_export(request, core, principal, camera_id=camera_id, start=start,
                             end=end, case=case, reason=reason, incident=incident,
                             watermark=watermark)
    return web.json_response(await produce_export(request, core, principal, plan), status=201)


@allow(*EXPORTERS)
async def list_exports(request: web.Request) -> web.Response:
    core = evidence_core(request)
    principal = require_principal(request)
    mine = None if principal.role in SEES_ALL else principal.user_id
    now = clock_of(request)()
    records = await core.store.call(exports.recent, mine)
    return web.json_response({"exports": [record.as_json(now) for record in records]})


@allow(*EXPORTERS)
async def download_export(request: web.Request) -> web.StreamResponse:
    core = evidence_core(request)
    principal = require_principal(request)
    token = request.match_info["export_id"]
    record = await core.store.call(exports.lookup, token)

    async def refuse(status: int, message: str, why: str, export_id: str = "") -> web.HTTPException:
        await audit(request, principal, "evidence.download", outcome="refused", refusal=None,
                    target=f"export:{export_id}" if export_id else "",
                    details={"reason": why, "id_length": len(token)})
        return error(status, message)

    if record is None:
        raise await refuse(404, "no such export", "unknown or malformed download id")
    if principal.role not in SEES_ALL and record.created_by_id != principal.user_id:
        raise await refuse(404, "no such export", "not the creator of this export", record.id)
    now = clock_of(request)()
    if record.expires_at <= now:
        raise await refuse(410, "this download link has expired; export again", "expired",
                           record.id)
    lapsed = await _grant_lapsed(request, core, record, now)
    if lapsed is not None:
        raise await refuse(403, lapsed, lapsed, record.id)
    try:
        fd, size = await asyncio.to_thread(exports.open_package, core.root, record)
    except (UnsafePath, OSError) as exc:
        raise await refuse(404, "the export package is not available", str(exc),
                           record.id) from None
    try:
        await audit(request, principal, "evidence.download", target=f"export:{record.id}",
                    camera_id=record.camera_id,
                    details={"case": record.case_number, "sha256": record.sha256, "bytes": size})
        await core.store.call(exports.count_download, record.id)
        safe_case = re.sub(r"[^A-Za-z0-9_-]", "_", record.case_number)[:40]
        response = web.StreamResponse(headers={
            "Content-Type": "application/x-tar",
            "Content-Disposition":
                f'attachment; filename="rtcc-{safe_case}-{record.camera_id}.tar"',
            "Content-Length": str(size),
            "Cache-Control": "no-store",
        })
        await response.prepare(request)
        offset = 0
        while offset < size:
            chunk = await asyncio.to_thread(os.pread, fd, SEND_CHUNK, offset)
            if not chunk:
                break
            await response.write(chunk)
            offset += len(chunk)
        await response.write_eof()
        return response
    finally:
        os.close(fd)


@allow(*EXPORTERS)
async def create_hold(request: web.Request) -> web.Response:
    core = evidence_core(request)
    principal = require_principal(request)
    fields = await read_json(request)
    camera_id, start, end, case, reason = _footage_fields(fields)
    await audit(request, principal, "evidence.hold", camera_id=camera_id,
                details={"case": case, "start": start, "end": end, "reason": reason})
    hold = await core.store.call(add_hold, camera_id=camera_id, case_number=case, start=start,
                                 end=end, reason=reason, created_by=principal.username,
                                 now=clock_of(request)())
    return web.json_response(hold.as_json(), status=201)


@allow(*EXPORTERS)
async def get_holds(request: web.Request) -> web.Response:
    core = evidence_core(request)
    camera = _camera_query(request)
    everything = request.query.get("all") in {"1", "true"}
    holds = await core.store.call(list_holds, camera_id=camera, active_only=not everything)
    return web.json_response({"holds": [hold.as_json() for hold in holds]})


@allow(Role.SUPERVISOR, Role.ADMIN)
async def release(request: web.Request) -> web.Response:
    core = evidence_core(request)
    principal = require_principal(request)
    hold_id = request.match_info["hold_id"]
    hold = await core.store.call(get_hold, hold_id) if HOLD_ID.fullmatch(hold_id) else None
    if hold is None:
        raise error(404, "no such hold")
    if not hold.active:
        raise error(409, "the hold was already released")
    await audit(request, principal, "evidence.hold.release", target=f"hold:{hold.id}",
                camera_id=hold.camera_id, details={"case": hold.case_number})
    await core.store.call(release_hold, hold.id, principal.username, clock_of(request)())
    updated = await core.store.call(get_hold, hold.id)
    assert updated is not None
    return web.json_response(updated.as_json())


def _clipped(segment: dict[str, Any], span: tuple[float, float], start: float, end: float
             ) -> dict[str, Any] | None:
    """The part ``start``..``end`` of a listed segment (recorded over ``span``), or None when
    they do not meet. A part shows its times only: the segment's size, frames and digest
    describe the whole."""
    first, last = max(span[0], start), min(span[1], end)
    if first >= last:
        return None
    if first == span[0] and last == span[1] and segment["utc_end"] is not None:
        return segment
    return {**segment, "utc_start": first, "utc_end": last, "pts_start": None,
            "pts_end": None, "bytes": None, "frames": None, "sha256": None, "clipped": True}


async def _granted_parts(request: web.Request, core: EvidenceCore, principal: Principal,
                         segments: list[dict[str, Any]], incident: str) -> list[dict[str, Any]]:
    """The listed segments as far as the caller's grants cover them, by the rules of exports:
    the department's cameras whole; an owner's camera only within the caller's ``recorded``
    grants, the named incident's grant (whole segments) or the owner's ``live_always``
    sharing windows. Cameras in neither the catalog nor the configuration are left out."""
    grants = required(request, FOOTAGE_GRANTS, "the security core")
    now = clock_of(request)()
    facts_of: dict[str, CameraFacts | None] = {}
    ranges_of: dict[str, list[tuple[float, float]]] = {}
    shown: list[dict[str, Any]] = []
    for segment in segments:
        camera_id = str(segment["camera_id"])
        if camera_id not in facts_of:
            facts_of[camera_id] = await _camera_facts(request, core, camera_id)
            ranges_of[camera_id] = await grants.recorded_ranges_for(camera_id,
                                                                    principal.user_id, now)
        facts = facts_of[camera_id]
        if facts is None:
            continue
        if facts.department:
            shown.append(segment)
            continue
        # A segment still being written ends, as far as anyone can see, now.
        start = float(segment["utc_start"])
        end = now if segment["utc_end"] is None else float(segment["utc_end"])
        if incident and await grants.incident_grant_for(camera_id, incident, start, end):
            shown.append(segment)
            continue
        consent = facts.consent
        if consent is not None and consent.sharing == SharingLevel.LIVE_ALWAYS:
            until = _shared_until(consent, start)
            part = _clipped(segment, (start, end), start, until) if until is not None else None
            if part is not None:
                shown.append(part)
                continue
        for first, last in ranges_of[camera_id]:
            part = _clipped(segment, (start, end), first, last)
            if part is not None:
                shown.append(part)
    return shown


def _shared_until(consent: CameraConsent, start: float) -> float | None:
    """Until when the owner's sharing windows hold from ``start`` on (infinity without
    windows), or None when ``start`` is outside them."""
    if not consent.windows:
        return float("inf")
    try:
        if not in_windows(consent.windows, consent.timezone, start):
            return None
        return window_end(consent.windows, consent.timezone, start)
    except (ZoneInfoNotFoundError, ValueError):
        return None


@allow(*EXPORTERS)
async def recordings(request: web.Request) -> web.Response:
    core = evidence_core(request)
    principal = require_principal(request)
    camera = _camera_query(request)
    incident = request.query.get("incident", "")
    if incident and not INCIDENT_ID.fullmatch(incident):
        raise error(400, "incident must be an incident id")
    try:
        limit = max(1, min(int(request.query.get("limit", "200")), 1000))
    except ValueError:
        raise error(400, "limit must be a number") from None
    try:
        rows = await core.store.call(EvidenceStore.recent_segments, camera, limit)
    except (sqlite3.Error, StoreUnavailable) as exc:
        raise error(503, f"the evidence store cannot be read: {exc}") from None
    segments = await _granted_parts(request, core, principal, [row.as_json() for row in rows],
                                    incident)
    return web.json_response({"segments": segments})


@staff()
async def recording_status(request: web.Request) -> web.Response:
    core = evidence_core(request)
    if core.recordings is None:
        return web.json_response({"state": "off", "recorders": []})
    return web.json_response(core.recordings.stats())


@public()
async def public_key(request: web.Request) -> web.Response:
    core = evidence_core(request)
    return web.json_response({"algorithm": "Ed25519", "fingerprint": core.key.fingerprint,
                              "pem": core.key.public_pem().decode("ascii")})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/exports", create_export)
    app.router.add_get("/api/exports", list_exports)
    app.router.add_get("/api/exports/{export_id}/download", download_export)
    app.router.add_post("/api/holds", create_hold)
    app.router.add_get("/api/holds", get_holds)
    app.router.add_post("/api/holds/{hold_id}/release", release)
    app.router.add_get("/api/recordings", recordings)
    app.router.add_get("/api/recordings/status", recording_status)
    app.router.add_get("/api/evidence/public-key", public_key)
