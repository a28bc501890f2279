"""A still of a tile, taken into a case as evidence.

``POST /api/cameras/{camera_id}/snapshot?profile=main&purpose=...&incident=...``
    body ``{"case": "2026-00123", "reason": "..."}``. The same consent check and audit as a
    live view (``purpose`` and ``incident`` as for WHEP). The picture is the server's own: the
    stream's latest keyframe, decoded on a worker thread, never what a browser drew. It goes to
    the evidence store, which hashes it (SHA-256), holds it and records its custody; answers 201
    ``{"evidence_id", "sha256", "bytes", "width", "height", "captured_at"}``, 409 when the
    stream has no picture right now.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from aiohttp import web

from rtcc.access import IntakeFile
from rtcc.appkeys import AUDIT, EVIDENCE_INTAKE, HUB, MEDIA_ACCESS, SETTINGS
from rtcc.errors import AuditWriteError, CameraNotFound, ProfileNotFound, RtccError
from rtcc.http import error, read_json, required
from rtcc.policy import staff
from rtcc.principal import actor_of
from rtcc.still import StillFailed, keyframe_jpeg, latest_keyframe


def _write_temp(folder: Path, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix="snapshot-", suffix=".jpg", dir=folder)
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    return Path(name)


@staff()
async def snapshot_to_case(request: web.Request) -> web.Response:
    camera_id = request.match_info["camera_id"]
    profile = request.query.get("profile", "main")
    body = await read_json(request)
    case = body.get("case")
    reason = body.get("reason", "")
    if not isinstance(case, str) or not case.strip() or len(case) > 64:
        raise error(400, "case must be the case number (1 to 64 characters)")
    if not isinstance(reason, str) or len(reason) > 500:
        raise error(400, "reason must be text of at most 500 characters")
    intake = required(request, EVIDENCE_INTAKE, "the evidence store")
    access = required(request, MEDIA_ACCESS, "the access check")
    audit = required(request, AUDIT, "the audit log")
    hub = request.config_dict[HUB]
    try:
        stream = hub.get(camera_id, profile)
    except (CameraNotFound, ProfileNotFound) as exc:
        raise error(404, str(exc)) from None
    # Taking a still is viewing the camera: consent checked and the view audited.
    grant = await access.open_view(request, camera_id, profile)
    actor = actor_of(request)
    try:
        frame = latest_keyframe(stream.gop_snapshot())
        if frame is None:
            raise error(409, "the camera has no picture right now (not streaming); play it on "
                        "the wall and try again")
        try:
            jpeg, width, height = await asyncio.to_thread(keyframe_jpeg, frame)
        except StillFailed as exc:
            raise error(502, str(exc)) from None
        folder = request.config_dict[SETTINGS].data_dir / "tmp"
        path = await asyncio.to_thread(_write_temp, folder, jpeg)
        try:
            receipt = await intake.add_file(IntakeFile(
                path=path, media_type="image/jpeg", extension="jpg", case_number=case.strip(),
                incident_id=request.query.get("incident", "")[:64],
                source=f"live still of camera {camera_id} ({profile}), keyframe captured at "
                       f"{frame.capture_time:.3f}",
                promoted_by=actor, reason=reason))
        except AuditWriteError:
            raise error(503, "the audit log cannot be written; try again shortly") from None
        except RtccError as exc:
            raise error(400, f"the still was not taken into evidence: {exc}") from None
        finally:
            await asyncio.to_thread(path.unlink, True)
        await audit.append(actor=actor.name, role=actor.role, action="camera.snapshot",
                           camera_id=camera_id, source=actor.source, target=receipt.item_id,
                           details={"case": case.strip(), "sha256": receipt.sha256,
                                    "profile": profile, "bytes": receipt.bytes})
    finally:
        await access.close_view(grant, "snapshot taken")
    return web.json_response({"evidence_id": receipt.item_id, "sha256": receipt.sha256,
                              "bytes": receipt.bytes, "width": width, "height": height,
                              "captured_at": frame.capture_time}, status=201)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/cameras/{camera_id}/snapshot", snapshot_to_case)
