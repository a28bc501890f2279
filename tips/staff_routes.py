"""The analysts' tip queue: ``/api/tips``, staff only, every view of a tip audited.

``GET   /api/tips?status=``                 the queue (new, in_review, linked, closed)
``GET   /api/tips/incidents``               the open incidents a tip may be linked to
``GET   /api/tips/{id}``                    one tip, its messages and files (audited)
``PATCH /api/tips/{id}``                    ``{"status"}``
``POST  /api/tips/{id}/messages``           ``{"body"}``: a reply the tipster reads
``POST  /api/tips/{id}/incident``           ``{"incident_id"}``: link to an open incident
``GET   /api/tips/{id}/media/{media_id}``   the analysts' copy (no metadata; audited)
``GET   /api/tips/{id}/media/{media_id}/original``  the original as sent, decrypted, as a
download (investigators, supervisors, administrators; audited)
``POST  /api/tips/{id}/media/{media_id}/evidence``  ``{"case", "reason"}``: the original (not
the analysts' copy) becomes an evidence item, hashed and held (investigators, supervisors,
administrators; audited); answers ``{"evidence_id", "sha256"}``

Staff are not anonymous: their audit entries carry who they are and where they called from.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from rtcc.access import IntakeFile
from rtcc.appkeys import AUDIT, EVIDENCE_INTAKE, INCIDENTS
from rtcc.errors import AuditWriteError, RtccError
from rtcc.http import error, read_json, required
from rtcc.policy import Role, allow, staff
from rtcc.principal import actor_of
from tips.checks import TextRefused, message_text
from tips.keys import TIP_LINE
from tips.service import TipLine
from tips.store import STATUSES, Media, Tip, TipNotFound

_VIEWABLE = frozenset({"image/jpeg", "video/mp4", "video/webm"})
"""Types of the copies this package writes itself; only these are ever served inline."""


def _line(request: web.Request) -> TipLine:
    return required(request, TIP_LINE, "the tip line")


async def _audit(request: web.Request, action: str, tip: Tip, **details: Any) -> None:
    actor = actor_of(request)
    try:
        await required(request, AUDIT, "the audit log").append(
            actor=actor.name, role=actor.role, action=action, target=tip.number,
            source=actor.source, details=details or None)
    except AuditWriteError:
        raise error(503, "the audit log cannot be written, so the tip is not shown; try "
                    "again shortly") from None


async def _tip(request: web.Request) -> Tip:
    try:
        return await _line(request).store.tip(request.match_info["tip_id"])
    except TipNotFound:
        raise error(404, "no such tip") from None


def _summary(tip: Tip) -> dict[str, Any]:
    return {"id": tip.id, "number": tip.number, "status": tip.status, "created": tip.created,
            "updated": tip.updated, "what": tip.what[:200], "where": tip.place,
            "lat": tip.lat, "lon": tip.lon, "incident_id": tip.incident_id}


def _media(media: Media) -> dict[str, Any]:
    return {"id": media.id, "state": media.status, "kind": media.kind, "type": media.label,
            "view_mime": media.view_mime, "size": media.declared_size,
            "received": media.received, "width": media.width, "height": media.height,
            "seconds": media.seconds, "note": media.note, "evidence_id": media.evidence_id}


@staff()
async def tip_queue(request: web.Request) -> web.Response:
    status = request.query.get("status") or None
    if status is not None and status not in STATUSES:
        raise error(400, f"status must be one of {', '.join(STATUSES)}")
    tips = await _line(request).store.tips(status)
    return web.json_response({"tips": [_summary(tip) for tip in tips], "statuses": STATUSES})


@staff()
async def open_incidents(request: web.Request) -> web.Response:
    incidents = await required(request, INCIDENTS, "the incident list").active_incidents()
    return web.json_response({"incidents": [{"id": i.id, "kind": i.kind} for i in incidents]})


async def _detail(line: TipLine, tip: Tip) -> dict[str, Any]:
    body = _summary(tip)
    body["what"] = tip.what
    body["when"] = tip.happened
    body["contact"] = line.open_contact(tip.contact_sealed)
    body["messages"] = [{"id": m.id, "at": m.created, "from": m.author, "staff": m.staff_name,
                         "body": m.body} for m in await line.store.messages(tip.id)]
    body["media"] = [_media(m) for m in await line.store.media_of(tip.id)]
    return body


@staff()
async def tip_detail(request: web.Request) -> web.Response:
    line = _line(request)
    tip = await _tip(request)
    await _audit(request, "tip.view", tip)
    return web.json_response(await _detail(line, tip))


@staff()
async def change_tip(request: web.Request) -> web.Response:
    line = _line(request)
    tip = await _tip(request)
    status = (await read_json(request)).get("status")
    if status not in STATUSES:
        raise error(400, f"status must be one of {', '.join(STATUSES)}")
    await _audit(request, "tip.status", tip, status=str(status))
    tip = await line.store.update_tip(tip.id, line.clock(), status=str(status))
    return web.json_response(_summary(tip))


@staff()
async def reply(request: web.Request) -> web.Response:
    line = _line(request)
    tip = await _tip(request)
    try:
        body = message_text(await read_json(request))
    except TextRefused as exc:
        raise error(400, str(exc), field=exc.field) from None
    await _audit(request, "tip.reply", tip)
    message = await line.store.add_message(tip.id, line.now_minute(), "staff",
                                           actor_of(request).name, body)
    if tip.status == "new":
        await line.store.update_tip(tip.id, line.clock(), status="in_review")
    return web.json_response({"id": message.id, "at": message.created, "body": message.body},
                             status=201)


@staff()
async def link_incident(request: web.Request) -> web.Response:
    line = _line(request)
    tip = await _tip(request)
    incident_id = (await read_json(request)).get("incident_id")
    incidents = await required(request, INCIDENTS, "the incident list").active_incidents()
    if not isinstance(incident_id, str) or incident_id not in {i.id for i in incidents}:
        raise error(400, "that is not an open incident; choose one from the list")
    await _audit(request, "tip.link", tip, incident=incident_id)
    tip = await line.store.update_tip(tip.id, line.clock(), status="linked",
                                      incident_id=incident_id)
    return web.json_response(_summary(tip))


async def _file(request: web.Request, tip: Tip) -> Media:
    media = await _line(request).store.media(request.match_info["media_id"])
    if media is None or media.tip_id != tip.id:
        raise error(404, "no such file on this tip")
    return media


@staff()
async def media_copy(request: web.Request) -> web.StreamResponse:
    line = _line(request)
    tip = await _tip(request)
    media = await _file(request, tip)
    if media.status != "ready" or media.view_mime not in _VIEWABLE:
        raise error(404, "this file has no copy to view: " + (media.note or media.status))
    await _audit(request, "tip.media.view", tip, media=media.id)
    extension = "jpg" if media.view_mime == "image/jpeg" else media.view_mime.split("/")[1]
    response = web.FileResponse(line.store.view_path(media.id), headers={
        "Content-Type": media.view_mime,
        "Content-Disposition": f'inline; filename="{tip.number}-{media.id[:8]}.{extension}"',
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    })
    return response


@allow(Role.INVESTIGATOR, Role.SUPERVISOR, Role.ADMIN)
async def media_original(request: web.Request) -> web.StreamResponse:
    line = _line(request)
    tip = await _tip(request)
    media = await _file(request, tip)
    if media.status != "ready":
        raise error(404, f"this file is {media.status}; there is no original to give")
    await _audit(request, "tip.original.download", tip, media=media.id)
    response = web.StreamResponse(headers={
        # Never inline, never sniffed: the original is whatever the tipster sent.
        "Content-Type": "application/octet-stream",
        "Content-Disposition":
            f'attachment; filename="{tip.number}-{media.id[:8]}-original.{media.label}"',
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    })
    response.content_length = media.received
    await response.prepare(request)
    async for chunk in line.store.original_chunks(media, line.file_key(media)):
        await response.write(chunk)
    await response.write_eof()
    return response


_MEDIA_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp",
                "gif": "image/gif", "mp4": "video/mp4",
                "webm": "video/webm"}


@allow(Role.INVESTIGATOR, Role.SUPERVISOR, Role.ADMIN)
async def promote_to_evidence(request: web.Request) -> web.Response:
    line = _line(request)
    tip = await _tip(request)
    media = await _file(request, tip)
    if media.status != "ready":
        raise error(409, f"this file is {media.status}; only a received file can be evidence")
    if media.evidence_id:
        raise error(409, f"this file is already evidence item {media.evidence_id}")
    body = await read_json(request)
    case = body.get("case")
    reason = body.get("reason", "")
    if not isinstance(case, str) or not case.strip() or len(case) > 64:
        raise error(400, "case must be the case number (1 to 64 characters)")
    if not isinstance(reason, str) or len(reason) > 500:
        raise error(400, "reason must be text of at most 500 characters")
    intake = required(request, EVIDENCE_INTAKE, "the evidence store")
    actor = actor_of(request)
    await _audit(request, "tip.evidence", tip, media=media.id, case=case, outcome="started")
    plain = await line.store.decrypt_for_evidence(media, line.file_key(media))
    try:
        receipt = await intake.add_file(IntakeFile(
            path=plain, media_type=_MEDIA_TYPES.get(media.label, "application/octet-stream"),
            extension=media.label if media.label.isalnum() else "bin",
            case_number=case.strip(), incident_id=tip.incident_id,
            source=f"tip {tip.number} file {media.id}",
            promoted_by=actor, reason=reason))
    except AuditWriteError:
        raise error(503, "the audit log cannot be written; try again shortly") from None
    except RtccError as exc:
        raise error(400, f"the file was not taken into evidence: {exc}") from None
    finally:
        await line.store.drop_file(plain)
    await line.store.set_evidence(media.id, receipt.item_id)
    await _audit(request, "tip.evidence", tip, media=media.id, case=case,
                 evidence_id=receipt.item_id, sha256=receipt.sha256, hold=receipt.hold_id)
    return web.json_response({"evidence_id": receipt.item_id, "sha256": receipt.sha256,
                              "bytes": receipt.bytes, "hold": receipt.hold_id}, status=201)


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/api/tips", tip_queue)
    router.add_get("/api/tips/incidents", open_incidents)
    router.add_get("/api/tips/{tip_id}", tip_detail)
    router.add_patch("/api/tips/{tip_id}", change_tip)
    router.add_post("/api/tips/{tip_id}/messages", reply)
    router.add_post("/api/tips/{tip_id}/incident", link_incident)
    router.add_get("/api/tips/{tip_id}/media/{media_id}", media_copy)
    router.add_get("/api/tips/{tip_id}/media/{media_id}/original", media_original)
    router.add_post("/api/tips/{tip_id}/media/{media_id}/evidence", promote_to_evidence)
