"""Re-publishing to a VMS over RTSP, through the real application: a camsim camera pulled by the
server, re-served at rtsp://127.0.0.1:PORT/cameras/ID, and pulled again by FFmpeg and by
GStreamer (real peers) with a VMS account's name and API token; refusals, revocation mid-stream
and the audit log."""

from __future__ import annotations

import asyncio
import base64
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from rtcc.appkeys import HUB
from rtcc.config import SecurityConfig, Settings, VmsRtspConfig
from rtcc.policy import Role
from server.app import create_app
from server.vms_rtsp import RTSP_OUT
from tests.fixtures.auth import MakeClient, bearer, role_headers
from tests.fixtures.camsim import CamsimHandle

DEADLINE = 30.0
WRONG_TOKEN = "not-the-vms-token-canary"


@dataclass
class Vms:
    client: TestClient[Any, Any]
    admin: dict[str, str]
    port: int
    username: str
    token: str

    def url(self, camera_id: str, *, token: str | None = None) -> str:
        return (f"rtsp://{self.username}:{token or self.token}@127.0.0.1:{self.port}"
                f"/cameras/{camera_id}")

    async def audit(self, **query: str) -> list[dict[str, Any]]:
        response = await self.client.get("/api/audit", params=query, headers=self.admin)
        return list((await response.json())["entries"])


async def add_camera(client: TestClient[Any, Any], admin: dict[str, str], camera_id: str,
                     sharing: str, url: str) -> None:
    camera = {"id": camera_id, "name": camera_id, "lat": 39.8, "lon": -89.6,
              "sharing": sharing, "profiles": {"main": {"url": url}}}
    response = await client.post("/api/cameras", json=camera, headers=admin)
    assert response.status == 201, await response.text()
    hub = client.app[HUB]
    async with asyncio.timeout(DEADLINE):
        while not hub.has_camera(camera_id):
            await asyncio.sleep(0.05)


@pytest.fixture
async def vms(tmp_path: Path, camsim: CamsimHandle, bootstrap_token: str,
              make_client: MakeClient) -> Vms:
    settings = Settings(
        data_dir=tmp_path / "data",
        security=SecurityConfig(allow_private_camera_hosts=["127.0.0.0/8"],
                                enforcement_interval_seconds=1.0),
        vms_rtsp=VmsRtspConfig(enabled=True, host="127.0.0.1", port=0))
    client = await make_client(create_app(settings))
    admin = bearer(bootstrap_token)
    await add_camera(client, admin, "plaza", "live_always", camsim.url("open"))
    await add_camera(client, admin, "vault", "live_emergency", camsim.url("open"))
    user, headers = await role_headers(client, admin, Role.ANALYST)
    token = headers["Authorization"].split(" ", 1)[1]
    return Vms(client, admin, client.app[RTSP_OUT].port, user.username, token)


DEBIAN_PACKAGE = {"ffmpeg": "ffmpeg", "ffprobe": "ffmpeg", "gst-launch-1.0": "gstreamer1.0-tools"}


def need(program: str) -> str:
    found = shutil.which(program)
    if found is None:
        pytest.skip(f"{program} is not installed "
                    f"(Debian package {DEBIAN_PACKAGE.get(program, program)})")
    return found


async def run(*args: str, timeout: float = DEADLINE) -> tuple[int, bytes, bytes]:
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(timeout):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out, err


def decoded_frames(framecrc: bytes) -> int:
    """Frames FFmpeg decoded, from its ``framecrc`` output (one line per frame)."""
    return sum(1 for line in framecrc.splitlines() if line and not line.startswith(b"#"))


async def test_ffmpeg_pulls_a_granted_camera_and_the_view_is_audited(vms: Vms) -> None:
    ffmpeg = need("ffmpeg")
    code, out, err = await run(ffmpeg, "-nostdin", "-v", "error", "-rtsp_transport", "tcp",
                               "-i", vms.url("plaza"), "-frames:v", "30", "-f", "framecrc", "-")
    assert code == 0, err.decode(errors="replace")
    assert decoded_frames(out) == 30
    async with asyncio.timeout(DEADLINE):
        while not (stops := await vms.audit(action="view.stop", camera="plaza")):
            await asyncio.sleep(0.1)
    start, = await vms.audit(action="view.start", camera="plaza")
    assert start["actor"] == vms.username
    assert start["source"] == "127.0.0.1"
    assert start["details"]["purpose"] == "re-published to the department's VMS"
    assert start["details"]["grant"]["basis"] == "sharing"
    assert stops[-1]["target"] == start["target"]


async def test_gstreamer_pulls_and_decodes_a_granted_camera(vms: Vms) -> None:
    gst = need("gst-launch-1.0")
    code, out, err = await run(
        gst, "-q", "rtspsrc", f"location=rtsp://127.0.0.1:{vms.port}/cameras/plaza"
        "?purpose=gstreamer%20test", f"user-id={vms.username}", f"user-pw={vms.token}",
        "protocols=tcp", "!", "rtph264depay", "!", "h264parse", "!", "openh264dec", "!",
        "fakesink", "num-buffers=30")
    assert code == 0, (out + err).decode(errors="replace")
    start, = await vms.audit(action="view.start", camera="plaza")
    assert start["details"]["purpose"] == "gstreamer test"


async def test_ffmpeg_and_gstreamer_pull_over_udp(vms: Vms) -> None:
    ffmpeg = need("ffmpeg")
    gst = need("gst-launch-1.0")
    code, out, err = await run(ffmpeg, "-nostdin", "-v", "error", "-rtsp_transport", "udp",
                               "-i", vms.url("plaza"), "-frames:v", "30", "-f", "framecrc", "-")
    assert code == 0, err.decode(errors="replace")
    assert decoded_frames(out) == 30
    code, out, err = await run(
        gst, "-q", "rtspsrc", f"location=rtsp://127.0.0.1:{vms.port}/cameras/plaza",
        f"user-id={vms.username}", f"user-pw={vms.token}", "protocols=udp", "!",
        "rtph264depay", "!", "h264parse", "!", "openh264dec", "!", "fakesink",
        "num-buffers=30")
    assert code == 0, (out + err).decode(errors="replace")
    assert len(await vms.audit(action="view.start", camera="plaza")) == 2


async def test_wrong_credentials_are_refused_with_401(vms: Vms) -> None:
    ffmpeg = need("ffmpeg")
    code, _, err = await run(ffmpeg, "-nostdin", "-rtsp_transport", "tcp",
                             "-i", vms.url("plaza", token=WRONG_TOKEN), "-frames:v", "1",
                             "-f", "null", "-")
    assert code != 0
    assert b"401" in err
    status, headers, _ = await exchange(vms.port, describe("plaza"))
    assert status == 401
    assert headers["www-authenticate"] == 'Basic realm="rtcc"'
    assert await vms.audit(action="view.start", camera="plaza") == []


async def test_a_camera_not_granted_is_refused_and_the_refusal_audited(vms: Vms) -> None:
    auth = basic(vms.username, vms.token)
    status, _, body = await exchange(vms.port, describe("vault", auth))
    assert status == 403, body
    status, _, body = await exchange(vms.port, describe("nowhere", auth))
    assert status == 404, body
    refused, = await vms.audit(action="view.start", camera="vault")
    assert refused["outcome"] == "denied"


async def pull_until_ended(vms: Vms, withdraw: Callable[[], Awaitable[None]]) -> None:
    """FFmpeg pulls ``plaza`` until it decoded 10 frames; then ``withdraw`` runs and FFmpeg's
    stream must end by itself."""
    ffmpeg = need("ffmpeg")
    process = await asyncio.create_subprocess_exec(
        ffmpeg, "-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i", vms.url("plaza"),
        "-f", "framecrc", "-", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    try:
        frames = 0
        async with asyncio.timeout(DEADLINE):
            while frames < 10:
                line = await process.stdout.readline()
                assert line, "FFmpeg stopped before the view was withdrawn"
                frames += not line.startswith(b"#")
        await withdraw()
        async with asyncio.timeout(DEADLINE):
            await process.stdout.read()  # to the end: FFmpeg saw the stream end
            await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert vms.client.app[RTSP_OUT].stats() == []


async def test_revoking_consent_ends_the_ffmpeg_pull(vms: Vms) -> None:
    async def narrow() -> None:
        response = await vms.client.patch("/api/cameras/plaza",
                                          json={"sharing": "live_emergency"}, headers=vms.admin)
        assert response.status == 200, await response.text()

    await pull_until_ended(vms, narrow)
    stop, = await vms.audit(action="view.stop", camera="plaza")
    assert stop["details"]["reason"] == "consent changed"


async def test_revoking_the_vms_token_ends_the_ffmpeg_pull(vms: Vms) -> None:
    headers = bearer(vms.token)

    async def revoke() -> None:
        response = await vms.client.get("/api/tokens", headers=headers)
        token, = (await response.json())["tokens"]
        response = await vms.client.delete(f"/api/tokens/{token['id']}", headers=headers)
        assert response.status in (200, 204), await response.text()

    await pull_until_ended(vms, revoke)
    async with asyncio.timeout(DEADLINE):
        while not (stops := await vms.audit(action="view.stop", camera="plaza")):
            await asyncio.sleep(0.1)
    assert "revoked" in stops[-1]["details"]["reason"], stops[-1]
    status, _, _ = await exchange(vms.port, describe("plaza", basic(vms.username, vms.token)))
    assert status == 401


async def test_bad_rtsp_input_gets_an_rtsp_error_and_the_server_keeps_serving(vms: Vms) -> None:
    cases = [
        (b"HELLO\r\n\r\n", 400),
        (b"OPTIONS * RTSP/2.0\r\nCSeq: 1\r\n\r\n", 505),
        (b"OPTIONS * RTSP/1.0\r\n\r\n", 400),
        (b"RECORD rtsp://h/cameras/plaza RTSP/1.0\r\nCSeq: 2\r\n\r\n", 405),
        (b"BREW rtsp://h/ RTSP/1.0\r\nCSeq: 3\r\n\r\n", 501),
        (b"SETUP rtsp://h/cameras/plaza RTSP/1.0\r\nCSeq: 4\r\n\r\n", 455),
        (b"OPTIONS * RTSP/1.0\r\nCSeq: 5\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431),
    ]
    for request, expected in cases:
        status, _, _ = await exchange(vms.port, request)
        assert status == expected, request[:40]
    status, headers, _ = await exchange(vms.port, b"OPTIONS * RTSP/1.0\r\nCSeq: 9\r\n\r\n")
    assert status == 200
    assert "DESCRIBE" in headers["public"]


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def describe(camera_id: str, authorization: str = "") -> bytes:
    lines = [f"DESCRIBE rtsp://127.0.0.1/cameras/{camera_id} RTSP/1.0", "CSeq: 1",
             "Accept: application/sdp"]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """One request on a new connection: the answer's status, headers and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(DEADLINE):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name:
                    headers[name.lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
    finally:
        writer.close()
    return int(lines[0].split(" ")[1]), headers, body
