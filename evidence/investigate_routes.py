"""The investigator's workspace API: what was recorded, playback, exports from the screen, and
a case's bookmarks and notes.

Every answer about a camera's footage is cut to what the caller may see, by the rules of exports
(``export_routes``): the department's own cameras whole; an owner's camera only within the
caller's ``recorded`` grants (approved footage requests) or the owner's ``live_always`` sharing.
A camera the caller may see nothing of over the range is refused (403) with no data at all.

- ``GET /api/investigate/cameras``: the cameras with footage the caller may see, and how.
- ``GET /api/investigate/timeline?camera=&from=&to=``: recorded and uploaded spans, gaps, legal
  holds (``evidence.timeline``).
- ``GET /api/investigate/play?camera=&from=&to=``: the recording as fragmented MP4 (remuxed,
  never re-encoded; ``evidence.playback``), streamed as it is muxed; headers
  ``X-Recording-Start``/``X-Recording-End`` give the capture time (UTC epoch s) of its first
  and last frame. Each playback is audited as a view: ``evidence.playback`` when it starts
  (with the grant), ``evidence.playback.stop`` with its duration and bytes.
- ``POST /api/investigate/exports`` ``{"cameras", "from", "to", "case", "reason"}`` -> 202
  ``{"job", "events"}``: one signed package per camera, as ``POST /api/exports`` makes, built in
  the background; ``GET /api/investigate/exports/{job}`` its state,
  ``GET /api/investigate/exports/{job}/events`` the same as server-sent events until it ends.
- ``GET|POST /api/cases/{case}/marks``, ``DELETE /api/cases/{case}/marks/{id}``: bookmarks and
  notes on a camera's timeline, kept with the case.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from evidence import marks, playback, timeline
from evidence.context import EvidenceCore
from evidence.export import ExportError, NoFootage
from evidence.export_routes import (
    EXPORTERS,
    CameraFacts,
    _allowed_requests,
    _camera_facts,
    _export_grant,
    _windows_cover,
    plan_export,
    produce_export,
)
from evidence.httpio import (
    CAMERA_ID,
    CASE_NUMBER,
    audit,
    camera_list,
    evidence_core,
    parse_time,
    text,
    time_range,
)
from evidence.store import EvidenceStore
from recording.segments import UnsafePath
from rtcc.appkeys import FOOTAGE_GRANTS, clock_of
from rtcc.config import SharingLevel
from rtcc.errors import StoreUnavailable
from rtcc.http import JsonError, error, read_json, required
from rtcc.policy import allow
from rtcc.principal import Principal, require_principal

log = logging.getLogger(__name__)

DEFAULT_PLAY_SECONDS = 300.0
MAX_TIMELINE_SECONDS = 7 * 86400.0
MAX_EXPORT_CAMERAS = 4
QUEUE_CHUNKS = 16
"""Muxed chunks waiting for a slow viewer before the muxing thread waits too."""
SSE_KEEPALIVE = 15.0


# -- what the caller may see ---------------------------------------------------------------------

async def visible_ranges(request: web.Request, core: EvidenceCore, principal: Principal,
                         camera_id: str, start: float, end: float
                         ) -> tuple[list[tuple[float, float]], str, CameraFacts | None]:
    """The parts of ``start``..``end`` of the camera's recorded footage the caller may see, and
    on what basis (``department``, ``sharing``, ``recorded``); ([], "", facts) when none."""
    facts = await _camera_facts(request, core, camera_id)
    if facts is None:
        return [], "", None
    if facts.department:
        return [(start, end)], "department", facts
    consent = facts.consent
    if (consent is not None and consent.sharing == SharingLevel.LIVE_ALWAYS
            and _windows_cover(consent, start, end)):
        return [(start, end)], "sharing", facts
    grants = required(request, FOOTAGE_GRANTS, "the security core")
    ranges = await grants.recorded_ranges_for(camera_id, principal.user_id, clock_of(request)())
    parts = sorted((max(a, start), min(b, end)) for a, b in ranges if a < end and b > start)
    return parts, ("recorded" if parts else ""), facts


def _query_range(request: web.Request, default_seconds: float) -> tuple[float, float]:
    start = parse_time(request.query.get("from"), "from")
    raw_end = request.query.get("to")
    end = start + default_seconds if raw_end is None else parse_time(raw_end, "to")
    if end <= start:
        raise error(400, "'to' must be after 'from'")
    return start, end


def _query_camera(request: web.Request) -> str:
    camera = request.query.get("camera", "")
    if not CAMERA_ID.fullmatch(camera):
        raise error(400, "camera must be a camera id")
    return camera


async def _refuse(request: web.Request, principal: Principal, action: str, camera_id: str,
                  start: float, end: float) -> JsonError:
    why = (f"you hold no grant to camera {camera_id}'s recorded footage between these times; "
           "ask its owner with a footage request")
    await audit(request, principal, action, camera_id=camera_id, outcome="refused",
                details={"start": start, "end": end, "refused": why}, refusal=None)
    return error(403, why)


# -- cameras and timeline ------------------------------------------------------------------------

def _candidate_cameras(store: EvidenceStore, user_id: int) -> list[str]:
    """Cameras with recorded segments, and those of the caller's footage requests."""
    cameras = set(store.cameras_with_segments())
    cameras.update(str(row[0]) for row in store.fetchall(
        "SELECT DISTINCT i.camera_id FROM footage_request_items i JOIN footage_requests r"
        " ON r.id = i.request_id WHERE r.requester_id = ? ORDER BY i.camera_id", (user_id,)))
    return sorted(cameras)


@allow(*EXPORTERS)
async def cameras(request: web.Request) -> web.Response:
    core = evidence_core(request)
    principal = require_principal(request)
    now = clock_of(request)()
    start = now - 30 * 86400.0
    shown = []
    for camera_id in await core.store.call(_candidate_cameras, principal.user_id):
        ranges, basis, facts = await visible_ranges(request, core, principal, camera_id,
                                                    start, now)
        if not ranges or facts is None:
            continue
        shown.append({"camera_id": camera_id, "name": facts.name, "owner_id": facts.owner_id,
                      "basis": basis, "ranges": [[a, b] for a, b in ranges]})
    return web.json_response({"cameras": shown})


@allow(*EXPORTERS)
async def camera_timeline(request: web.Request) -> web.Response:
    core = evidence_core(request)
    principal = require_principal(request)
    camera_id = _query_camera(request)
    start, end = _query_range(request, 3600.0)
    if end - start > MAX_TIMELINE_SECONDS:
        raise error(400, "a timeline covers at most 7 days; narrow the range")
    ranges, basis, _facts = await visible_ranges(request, core, principal, camera_id, start, end)
    if not ranges:
        raise await _refuse(request, principal, "evidence.timeline", camera_id, start, end)
    allowed = await _allowed_requests(core, principal)
    body = await core.store.call(timeline.camera_timeline, camera_id, start, end, ranges,
                                 clock_of(request)(), allowed)
    body["basis"] = basis
    return web.json_response(body)


# -- playback ------------------------------------------------------------------------------------

PLAYBACK_RECHECK_SECONDS = 2.0
"""How often a running playback checks that its grant still allows it, like a live view."""


@allow(*EXPORTERS)
async def play(request: web.Request) -> web.StreamResponse:
    core = evidence_core(request)
    principal = require_principal(request)
    camera_id = _query_camera(request)
    start, end = _query_range(request, DEFAULT_PLAY_SECONDS)
    end = min(end, start + playback.MAX_PLAY_SECONDS)
    ranges, basis, facts = await visible_ranges(request, core, principal, camera_id, start, end)
    # Play from the first moment the caller may see at or after ``start``, within that range.
    part = next(((a, b) for a, b in ranges if b > start), None)
    if part is None:
        raise await _refuse(request, principal, "evidence.playback", camera_id, start, end)
    begin, until = max(start, part[0]), min(end, part[1])
    grant = await _export_grant(request, principal, camera_id, facts, begin, until, "")
    if grant is None:
        raise await _refuse(request, principal, "evidence.playback", camera_id, begin, until)
    allowed = await _allowed_requests(core, principal)
    try:
        plan = await core.store.call(playback.plan, core.root, camera_id, begin, until,
                                     within_range=basis != "department",
                                     allowed_requests=allowed)
    except NoFootage as exc:
        raise error(404, str(exc)) from None
    except (ExportError, UnsafePath) as exc:
        raise error(422, f"camera {camera_id}: {exc}") from None
    owner = facts.owner_id if facts is not None else ""
    details: dict[str, Any] = {"start": begin, "end": until, "grant": grant.as_json(),
                               "first_frame": plan.first_capture,
                               "segments": list(plan.segment_ids)}
    await audit(request, principal, "evidence.playback", camera_id=camera_id, owner_id=owner,
                outcome="started", details=details)
    response = web.StreamResponse(headers={
        "Content-Type": "video/mp4",
        "Cache-Control": "no-store",
        "X-Recording-Start": f"{plan.first_capture:.6f}",
        "X-Recording-End": f"{plan.last_capture:.6f}",
        "X-Playback-Frames": str(plan.frames),
        "X-Playback-Codec": plan.codec,
        "X-Playback-Mime": plan.mime,
    })
    started = time.monotonic()
    sent_bytes = 0
    reason = "viewer left"
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_CHUNKS)
    stop = threading.Event()

    def deliver(chunk: bytes) -> None:
        future = asyncio.run_coroutine_threadsafe(queue.put(chunk), loop)
        while not stop.is_set():
            try:
                future.result(timeout=1.0)
                return
            except TimeoutError:
                continue
        future.cancel()

    def mux() -> int:
        try:
            return playback.mux_fmp4(plan, deliver, stop)
        finally:
            asyncio.run_coroutine_threadsafe(queue.put(None), loop)

    async def still_allowed() -> bool:
        # Consent and grants are read again: a revoked request or narrowed sharing ends it.
        _ranges, _basis, now_facts = await visible_ranges(request, core, principal, camera_id,
                                                          begin, until)
        return await _export_grant(request, principal, camera_id, now_facts, begin, until,
                                   "") is not None

    muxer = asyncio.ensure_future(asyncio.to_thread(mux))
    try:
        await response.prepare(request)
        next_check = time.monotonic() + PLAYBACK_RECHECK_SECONDS
        while (chunk := await queue.get()) is not None:
            if time.monotonic() >= next_check:
                if not await still_allowed():
                    reason = "the grant that allowed this playback ended"
                    break
                next_check = time.monotonic() + PLAYBACK_RECHECK_SECONDS
            await response.write(chunk)
            sent_bytes += len(chunk)
        else:
            await muxer
            await response.write_eof()
            reason = "ended"
    except (ConnectionResetError, ExportError) as exc:
        reason = f"viewer left ({exc})" if isinstance(exc, ConnectionResetError) else str(exc)
    finally:
        stop.set()
        while not queue.empty():
            queue.get_nowait()
        with contextlib.suppress(ExportError, OSError):
            await asyncio.shield(muxer)
        await audit(request, principal, "evidence.playback.stop", camera_id=camera_id,
                    owner_id=owner, refusal=None,
                    details={**details, "reason": reason, "bytes": sent_bytes,
                             "seconds": round(time.monotonic() - started, 3)})
    return response


# -- exports from the screen ---------------------------------------------------------------------

@allow(*EXPORTERS)
async def start_export_job(request: web.Request) -> web.Response:
    core = evidence_core(request)
    principal = require_principal(request)
    fields = await read_json(request)
    camera_ids = camera_list(fields, limit=MAX_EXPORT_CAMERAS)
    start, end = time_range(fields)
    case = text(fields, "case", limit=64, required=True, pattern=CASE_NUMBER)
    reason = text(fields, "reason", limit=300)
    plans = []
    refused: list[dict[str, Any]] = []
    for camera_id in camera_ids:
        try:
            plans.append(await plan_export(request, core, principal, camera_id=camera_id,
                                           start=start, end=end, case=case, reason=reason,
                                           incident="", watermark=False))
        except JsonError as exc:
            if exc.status_code != 403:
                raise
            refused.append({"camera_id": camera_id, "error": exc.message, "status": 403})
    if not plans:
        raise error(403, "; ".join(item["error"] for item in refused))
    loop = asyncio.get_running_loop()

    async def work(job: Any) -> None:
        for item in refused:
            job.add_result(item)
        for plan in plans:
            camera = plan.camera_id

            def progress(stage: str, fraction: float, camera: str = camera) -> None:
                loop.call_soon_threadsafe(job.progress, camera, stage, fraction)

            job.progress(camera, "waiting for the exporter", 0.0)
            try:
                result = await produce_export(request, core, principal, plan, progress)
            except JsonError as exc:
                job.add_result({"camera_id": camera, "error": exc.message,
                                "status": exc.status_code})
                continue
            job.add_result({"camera_id": camera, **result})
            await core.export_jobs.save(job)  # a package made is a package kept

    try:
        job = await core.export_jobs.submit(principal.user_id, case,
                                            tuple(p.camera_id for p in plans), work)
    except (RuntimeError, StoreUnavailable) as exc:
        raise error(503, str(exc)) from None
    return web.json_response({"job": job.id, "state": job.as_json(),
                              "events": f"/api/investigate/exports/{job.id}/events"},
                             status=202)


async def _job_of(request: web.Request, core: EvidenceCore, principal: Principal) -> Any:
    job = await core.export_jobs.get(request.match_info["job_id"])
    if job is None or job.user_id != principal.user_id:
        raise error(404, "no such export job")
    return job


@allow(*EXPORTERS)
async def export_job(request: web.Request) -> web.Response:
    core = evidence_core(request)
    return web.json_response((await _job_of(request, core, require_principal(request))).as_json())


@allow(*EXPORTERS)
async def export_job_events(request: web.Request) -> web.StreamResponse:
    core = evidence_core(request)
    job = await _job_of(request, core, require_principal(request))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                           "Cache-Control": "no-store"})
    await response.prepare(request)
    seen = -1
    try:
        while True:
            if job.version != seen:
                seen = job.version
                await response.write(f"data: {json.dumps(job.as_json())}\n\n".encode())
                if job.state != "running":
                    break
            else:
                await response.write(b": keep-alive\n\n")
            await job.changed_since(seen, SSE_KEEPALIVE)
    except ConnectionResetError:
        return response
    await response.write_eof()
    return response


# -- bookmarks and notes -------------------------------------------------------------------------

def _case_of(request: web.Request) -> str:
    case = unquote(request.match_info["case"])
    if not CASE_NUMBER.fullmatch(case):
        raise error(400, "case has characters that are not allowed")
    return case


@allow(*EXPORTERS)
async def list_marks(request: web.Request) -> web.Response:
    core = evidence_core(request)
    principal = require_principal(request)
    case = _case_of(request)
    found = await core.store.call(marks.marks_of_case, case)
    now = clock_of(request)()
    # A mark says something about a moment of a camera: shown only to who may see that camera.
    seeing: dict[str, bool] = {}
    shown = []
    for mark in found:
        if mark.camera_id not in seeing:
            ranges, _basis, _facts = await visible_ranges(request, core, principal,
                                                          mark.camera_id, 0.0, now)
            seeing[mark.camera_id] = bool(ranges)
        if seeing[mark.camera_id]:
            shown.append(mark.as_json())
    return web.json_response({"case": case, "marks": shown})


@allow(*EXPORTERS)
async def add_mark(request: web.Request) -> web.Response:
    core = evidence_core(request)
    principal = require_principal(request)
    case = _case_of(request)
    fields = await read_json(request)
    camera_id = text(fields, "camera", limit=64, required=True, pattern=CAMERA_ID)
    kind = text(fields, "kind", limit=16) or "bookmark"
    if kind not in marks.KINDS:
        raise error(400, "kind must be 'bookmark' or 'note'")
    at = parse_time(fields.get("at"), "at")
    end = None if fields.get("end") in (None, "") else parse_time(fields.get("end"), "end")
    if end is not None and end <= at:
        raise error(400, "'end' must be after 'at'")
    note = text(fields, "text", limit=2000)
    ranges, _basis, _facts = await visible_ranges(request, core, principal, camera_id, at,
                                                  end if end is not None else at + 0.001)
    if not ranges:
        raise await _refuse(request, principal, "evidence.mark", camera_id, at, end or at)
    mark = await core.store.call(marks.add_mark, case_number=case, camera_id=camera_id,
                                 kind=kind, at=at, end=end, text=note,
                                 created_by=principal.username,
                                 created_by_id=principal.user_id, now=clock_of(request)())
    await audit(request, principal, "evidence.mark", target=f"case:{case}",
                camera_id=camera_id, details={"id": mark.id, "kind": kind, "at": at})
    return web.json_response(mark.as_json(), status=201)


@allow(*EXPORTERS)
async def delete_mark(request: web.Request) -> web.Response:
    core = evidence_core(request)
    principal = require_principal(request)
    case = _case_of(request)
    try:
        mark_id = int(request.match_info["mark_id"])
    except ValueError:
        raise error(404, "no such mark") from None
    if not await core.store.call(marks.delete_mark, mark_id, principal.user_id):
        raise error(404, "no such mark of yours")
    await audit(request, principal, "evidence.mark.delete", target=f"case:{case}",
                details={"id": mark_id}, refusal=None)
    return web.json_response({"deleted": mark_id})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/investigate/cameras", cameras)
    app.router.add_get("/api/investigate/timeline", camera_timeline)
    app.router.add_get("/api/investigate/play", play)
    app.router.add_post("/api/investigate/exports", start_export_job)
    app.router.add_get("/api/investigate/exports/{job_id}", export_job)
    app.router.add_get("/api/investigate/exports/{job_id}/events", export_job_events)
    app.router.add_get("/api/cases/{case}/marks", list_marks)
    app.router.add_post("/api/cases/{case}/marks", add_mark)
    app.router.add_delete("/api/cases/{case}/marks/{mark_id}", delete_mark)
