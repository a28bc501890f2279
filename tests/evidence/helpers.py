"""Shared tools of the evidence tests: H.264 made by FFmpeg, segments written like a recorder,
and an application carrying the security and evidence cores."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import av
from aiohttp import web
from aiohttp.test_utils import TestClient

from evidence import add_routes as add_evidence_routes
from evidence import evidence_context
from evidence.manifest import MANIFEST_NAME, PUBLIC_KEY_NAME, SIGNATURE_NAME, sign_manifest
from evidence.signing import SigningKey, load_or_create
from evidence.store import EvidenceStore
from recording.segments import SegmentFile, segment_name
from recording.store import NewSegment
from rtcc.appkeys import CAMERA_DIRECTORY, CLOCK, DATABASE, HUB, SETTINGS
from rtcc.config import Settings
from rtcc.db import Database
from rtcc.hub import StreamHub
from rtcc.media import VIDEO_CLOCK_RATE, EncodedFrame
from security import add_routes as add_security_routes
from security import security_context, security_middleware
from security.store import Clock
from server.security_headers import security_headers_on_prepare
from tests.security.harness import Directory

FPS = 15


def make_h264(folder: Path, seconds: float, *, fps: int = FPS, gop: int = FPS,
              size: str = "320x180") -> list[tuple[bytes, bool]]:
    """Access units (Annex-B, SPS/PPS before every IDR) and keyframe flags, made by FFmpeg."""
    path = folder / f"src-{seconds:g}s-{size}.h264"
    if not path.exists():
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
             f"testsrc2=size={size}:rate={fps}", "-t", f"{seconds:g}", "-c:v", "libx264",
             "-preset", "ultrafast", "-bf", "0", "-g", str(gop), "-x264-params",
             "repeat-headers=1", "-f", "h264", str(path)],
            check=True, timeout=60)
    with av.open(str(path), format="h264") as container:
        return [(bytes(packet), bool(packet.is_keyframe))
                for packet in container.demux(video=0) if packet.size]


def frames_from(units: Sequence[tuple[bytes, bool]], start: float, *, fps: int = FPS,
                pts0: int = 900_000) -> list[EncodedFrame]:
    step = VIDEO_CLOCK_RATE // fps
    return [EncodedFrame("h264", data, pts0 + i * step, key, start + i / fps, i == 0)
            for i, (data, key) in enumerate(units)]


def write_segments(store: EvidenceStore, root: Path, camera_id: str,
                   frames: Sequence[EncodedFrame], seconds: float) -> list[int]:
    """Segments cut at the first keyframe after ``seconds``, as the recorder cuts them."""
    ids: list[int] = []
    current: SegmentFile | None = None
    segment_id = 0
    start_pts = 0
    batch: list[EncodedFrame] = []

    def close() -> None:
        assert current is not None
        current.write(batch)
        store.close_segment(segment_id, current.close(), time.time())
        ids.append(segment_id)

    for frame in frames:
        if current is not None and frame.keyframe and (
                frame.pts - start_pts >= seconds * VIDEO_CLOCK_RATE):
            close()
            current = None
        if current is None:
            assert frame.keyframe
            relative = segment_name(camera_id, "h264", frame.capture_time)
            current = SegmentFile(root, relative)
            segment_id = store.open_segment(NewSegment(
                camera_id=camera_id, profile="main", origin="server", path=relative,
                codec="h264", utc_start=frame.capture_time, pts_start=frame.pts,
                discontinuity=frame.discontinuity), time.time())
            start_pts = frame.pts
            batch = []
        batch.append(frame)
    if current is not None:
        close()
    return ids


async def _empty_hub(app: web.Application) -> AsyncIterator[None]:
    async with StreamHub() as hub:
        app[HUB] = hub
        yield


def evidence_app(settings: Settings, directory: Directory, *,
                 clock: Clock | None = None) -> web.Application:
    """The security core, an empty hub and the evidence core, with their routes."""
    app = web.Application(middlewares=[security_middleware])
    app.on_response_prepare.append(security_headers_on_prepare)
    app[SETTINGS] = settings
    app[DATABASE] = Database.from_settings(settings)  # SQLite unless the settings say otherwise
    app[CAMERA_DIRECTORY] = directory
    if clock is not None:
        app[CLOCK] = clock
    app.cleanup_ctx.append(security_context)
    app.cleanup_ctx.append(_empty_hub)
    app.cleanup_ctx.append(evidence_context)
    add_security_routes(app)
    add_evidence_routes(app)
    return app


def member_offset(package: Path, name: str) -> tuple[int, int]:
    """(byte offset of the member's data in the tar file, its size)."""
    with tarfile.open(package) as tar:
        member = tar.getmember(name)
        return member.offset_data, member.size


def member_bytes(package: Path, name: str) -> bytes:
    with tarfile.open(package) as tar:
        handle = tar.extractfile(name)
        assert handle is not None
        return handle.read()


def flip_byte(package: Path, target: Path, offset: int, new: int | None = None) -> None:
    """Copy ``package`` to ``target`` with the byte at ``offset`` changed."""
    data = bytearray(package.read_bytes())
    data[offset] = (data[offset] ^ 0x01) if new is None else new
    target.write_bytes(bytes(data))


def app_of(client: TestClient[Any, Any]) -> web.Application:
    app = client.app
    assert isinstance(app, web.Application)
    return app


def run_text(function: object, *args: object, **kwargs: object) -> tuple[int, str]:
    out = io.StringIO()
    code = function(*args, out=out, **kwargs)  # type: ignore[operator]
    return int(code), out.getvalue()


def public_key_file(folder: Path, key_folder: Path) -> Path:
    """The public key of the signing key kept in ``key_folder``, as a PEM file (what a
    department publishes)."""
    path = folder / f"trusted-{key_folder.name}.pem"
    path.write_bytes(load_or_create(key_folder).public_pem())
    return path


def resign(package: Path, target: Path, key: SigningKey) -> None:
    """What a forger does: alter the case, re-sign the manifest with ``key`` and bundle that key
    (every hash and every signature in the copy is consistent)."""
    with tarfile.open(package) as tar:
        members = {member.name: member for member in tar.getmembers()}
        data = {}
        for name in members:
            handle = tar.extractfile(name)
            assert handle is not None
            data[name] = handle.read()
    manifest = json.loads(data[MANIFEST_NAME])
    manifest["case"] = "FORGED"
    manifest["signing_key"]["fingerprint"] = key.fingerprint
    data[MANIFEST_NAME], data[SIGNATURE_NAME] = sign_manifest(manifest, key)
    data[PUBLIC_KEY_NAME] = key.public_pem()
    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as out:
        for name, member in members.items():
            member.size = len(data[name])
            out.addfile(member, io.BytesIO(data[name]))
