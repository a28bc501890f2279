"""Upload routes for owners' agents (the contract is in ``evidence.uploads``)."""

from __future__ import annotations

from aiohttp import web

from evidence.httpio import CAMERA_ID, audit, evidence_core, text
from evidence.requests import RECEIVED, RECEIVING, FootageRequest
from evidence.uploads import MAX_CHUNK, Declaration, Upload, UploadError
from rtcc.appkeys import clock_of
from rtcc.http import error, read_json
from rtcc.policy import Role, allow
from rtcc.principal import Principal, require_principal

MAX_DECLARATION = 2 * 1024 * 1024
"""A frame table of 20,000 frames fits."""


NOTHING_ACCEPTED = "the audit log cannot be written; nothing was accepted"


async def _request_or_404(request: web.Request, request_id: str) -> FootageRequest:
    found = await evidence_core(request).requests.get(request_id)
    if found is None:
        raise error(404, "no such footage request")
    return found


async def _request_camera(request: web.Request) -> tuple[FootageRequest, str]:
    found = await _request_or_404(request, request.match_info["request_id"])
    camera_id = request.match_info["camera_id"]
    if not CAMERA_ID.fullmatch(camera_id):
        raise error(404, "no such camera in this request")
    return found, camera_id


def _owner_of(found: FootageRequest, camera_id: str) -> str:
    item = found.item(camera_id)
    return item.owner_id if item else ""


async def _refuse(request: web.Request, principal: Principal, found: FootageRequest,
                  camera_id: str, exc: UploadError) -> web.HTTPException:
    await audit(request, principal, "footage.upload", target=f"footage_request:{found.id}",
                camera_id=camera_id, owner_id=_owner_of(found, camera_id), outcome="refused",
                details={"reason": str(exc)}, refusal=NOTHING_ACCEPTED)
    return error(exc.status, str(exc), **exc.extra)


async def _check_granted(request: web.Request, principal: Principal, found: FootageRequest,
                         camera_id: str, now: float) -> None:
    """Refuse, and audit the refusal, unless the agent's owner may upload this footage now."""
    try:
        evidence_core(request).uploads.check_granted(found, camera_id, principal.owner_id, now)
    except UploadError as exc:
        raise await _refuse(request, principal, found, camera_id, exc) from None


@allow(Role.AGENT)
async def begin_upload(request: web.Request) -> web.Response:
    core = evidence_core(request)
    principal = require_principal(request)
    found = await _request_or_404(request, request.match_info["request_id"])
    fields = await read_json(request, MAX_DECLARATION)
    try:
        declaration = Declaration.parse(fields)
    except UploadError as exc:
        raise error(exc.status, str(exc)) from None
    now = clock_of(request)()
    await _check_granted(request, principal, found, declaration.camera_id, now)
    try:
        upload, created = await core.uploads.begin(found, declaration, now)
    except UploadError as exc:
        raise await _refuse(request, principal, found, declaration.camera_id, exc) from None
    if created:
        item = found.item(declaration.camera_id)
        await audit(request, principal, "footage.upload.begin", target=f"upload:{upload.id}",
                    camera_id=declaration.camera_id, owner_id=item.owner_id if item else "",
                    details={"request": found.id, "sequence": declaration.sequence,
                             "sha256": declaration.sha256, "size": declaration.size},
                    refusal=NOTHING_ACCEPTED)
        if item is not None and item.status != RECEIVED:
            await core.requests.mark(found.id, declaration.camera_id, RECEIVING)
    return web.json_response(upload.as_json(), status=201 if created else 200)


async def _upload_of(request: web.Request, principal: Principal) -> tuple[Upload, FootageRequest]:
    core = evidence_core(request)
    upload = await core.uploads.get(request.match_info["upload_id"])
    if upload is None:
        raise error(404, "no such upload")
    found = await core.requests.get(upload.request_id)
    item = found.item(upload.camera_id) if found else None
    if found is None or item is None or item.owner_id != principal.owner_id:
        raise error(404, "no such upload")
    return upload, found


@allow(Role.AGENT)
async def upload_status(request: web.Request) -> web.Response:
    principal = require_principal(request)
    upload, _ = await _upload_of(request, principal)
    return web.json_response(upload.as_json())


@allow(Role.AGENT)
async def upload_bytes(request: web.Request) -> web.Response:
    core = evidence_core(request)
    principal = require_principal(request)
    upload, found = await _upload_of(request, principal)
    now = clock_of(request)()
    await _check_granted(request, principal, found, upload.camera_id, now)
    try:
        offset = int(request.headers.get("Upload-Offset", ""))
    except ValueError:
        raise error(400, "the Upload-Offset header is required", offset=upload.received) from None
    if request.content_length is None:
        raise error(411, "send Content-Length")
    if request.content_length > MAX_CHUNK:
        raise error(413, f"send at most {MAX_CHUNK} bytes per request")
    data = await request.content.read(MAX_CHUNK + 1)
    if len(data) != request.content_length:
        raise error(400, "the body is shorter than its Content-Length")
    try:
        updated = await core.uploads.append(upload, offset, data, now)
    except UploadError as exc:
        if exc.status == 422:
            raise await _refuse(request, principal, found, upload.camera_id, exc) from None
        raise error(exc.status, str(exc), **exc.extra) from None
    if updated.state == "complete" and upload.state != "complete":
        await core.requests.mark(found.id, upload.camera_id, RECEIVING)
        await audit(request, principal, "footage.upload", target=f"upload:{upload.id}",
                    camera_id=upload.camera_id, owner_id=_owner_of(found, upload.camera_id),
                    details={"request": found.id, "segment_id": updated.segment_id,
                             "sha256": upload.sha256, "size": upload.size,
                             "case": found.case_number},
                    refusal=NOTHING_ACCEPTED)
    return web.json_response(updated.as_json())


@allow(Role.AGENT)
async def finish_camera(request: web.Request) -> web.Response:
    core = evidence_core(request)
    principal = require_principal(request)
    found, camera_id = await _request_camera(request)
    await read_json(request)
    await _check_granted(request, principal, found, camera_id, clock_of(request)())
    uploads = await core.uploads.uploads_of(found.id, camera_id)
    unfinished = [u.sequence for u in uploads if u.state != "complete"]
    if unfinished:
        raise error(409, f"segment {unfinished[0]} is not fully uploaded yet")
    await audit(request, principal, "footage.upload.complete", target=f"footage_request:{found.id}",
                camera_id=camera_id, owner_id=_owner_of(found, camera_id),
                details={"segments": len(uploads), "case": found.case_number},
                refusal=NOTHING_ACCEPTED)
    await core.requests.mark(found.id, camera_id, RECEIVED)
    return web.json_response({"request": found.id, "camera_id": camera_id,
                              "segments": len(uploads), "status": RECEIVED})


@allow(Role.AGENT)
async def fail_camera(request: web.Request) -> web.Response:
    core = evidence_core(request)
    principal = require_principal(request)
    found, camera_id = await _request_camera(request)
    fields = await read_json(request)
    reason = text(fields, "reason", limit=500, required=True)
    await _check_granted(request, principal, found, camera_id, clock_of(request)())
    await audit(request, principal, "footage.upload.failed", target=f"footage_request:{found.id}",
                camera_id=camera_id, owner_id=_owner_of(found, camera_id), outcome="failed",
                details={"reason": reason, "case": found.case_number}, refusal=NOTHING_ACCEPTED)
    if not await core.requests.mark_failed(found.id, camera_id, reason):
        raise error(409, "every segment of this camera was already received")
    return web.json_response({"request": found.id, "camera_id": camera_id,
                              "status": "failed", "failure": reason})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/footage-requests/{request_id}/uploads", begin_upload)
    app.router.add_get("/api/uploads/{upload_id}", upload_status)
    app.router.add_patch("/api/uploads/{upload_id}", upload_bytes)
    app.router.add_post("/api/footage-requests/{request_id}/cameras/{camera_id}/complete",
                        finish_camera)
    app.router.add_post("/api/footage-requests/{request_id}/cameras/{camera_id}/fail",
                        fail_camera)
