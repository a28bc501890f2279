"""Review of secrets at rest and in answers: a sealed secret has exactly one accepted spelling,
and refusals, listings, statistics and the audit log never carry a camera password or a token."""

from __future__ import annotations

import base64
import logging
import os
import string
from pathlib import Path
from urllib.parse import quote

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from rtcc.policy import Role
from security.secretbox import AesGcmBox, SecretDecryptError
from server.app import create_app
from tests.fixtures.auth import BOOTSTRAP_TOKEN, MakeClient, bearer, role_headers, security_settings
from tests.fixtures.canary import CAMSIM_PASSWORD, CAMSIM_USER
from tests.relay.whep_client import make_offer

ALPHABET = string.ascii_letters + string.digits + "-_"


def test_every_changed_character_of_a_sealed_secret_is_refused() -> None:
    """urlsafe base64 ignores the unused low bits of the last character, so 'j5A=' and 'j5B='
    decode alike: the box must refuse every spelling but the one it wrote."""
    box = AesGcmBox(os.urandom(32))
    for plaintext in (CAMSIM_PASSWORD, "canary-Pa55word-7e1f0c", "x", "ab"):
        sealed = box.encrypt(plaintext)
        assert box.decrypt(sealed) == plaintext
        prefix, body = sealed[:3], sealed[3:]
        changed = 0
        for index, original in enumerate(body):
            if original == "=":
                continue
            for other in ALPHABET:
                if other == original:
                    continue
                with pytest.raises(SecretDecryptError):
                    box.decrypt(prefix + body[:index] + other + body[index + 1:])
                changed += 1
        assert changed > 60 * 40
        for damaged in (sealed + "=", sealed.rstrip("="), sealed + "A", sealed + "\n",
                        prefix + base64.b64encode(base64.urlsafe_b64decode(body)).decode()):
            if damaged != sealed:
                with pytest.raises(SecretDecryptError):
                    box.decrypt(damaged)


async def test_refusals_listings_and_the_audit_log_carry_no_secret(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await make_client(create_app(security_settings(tmp_path)))
    admin = bearer(bootstrap_token)
    _, owner = await role_headers(client, admin, Role.OWNER, owner_id="shop-s")
    answers: list[str] = []

    async def call(method: str, path: str, headers: dict[str, str], **kwargs: object) -> int:
        response = await client.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
        answers.append(await response.text())
        answers.append(str(response.headers))
        return response.status

    in_url = f"rtsp://{CAMSIM_USER}:{quote(CAMSIM_PASSWORD, safe='')}@10.9.8.7/main"
    raw_in_url = f"rtsp://{CAMSIM_USER}:{CAMSIM_PASSWORD}@10.9.8.7/main"
    body = {"name": "S", "lat": 1.0, "lon": 2.0, "sharing": "live_always"}
    for url in (in_url, raw_in_url, f"exec:{CAMSIM_PASSWORD}"):
        assert await call("POST", "/api/owner/cameras", owner, json={
            **body, "profiles": {"main": {"url": url, "password": CAMSIM_PASSWORD}}}) == 400
    for url in (in_url, f"exec:{CAMSIM_PASSWORD}"):
        assert await call("POST", "/api/cameras", admin, json={
            **body, "id": "secret-cam", "profiles": {"main": {"url": url}}}) == 400
    assert await call("POST", "/api/owner/cameras", owner, json={
        **body, "profiles": {"main": {"url": "rtsp://10.9.8.7/main",
                                      "password": {"value": CAMSIM_PASSWORD}}}}) == 400
    csv = ("id,name,lat,lon,sharing,main_url,main_username,main_password\n"
           f"bad id!,Bad,1,2,live_always,{raw_in_url},{CAMSIM_USER},{CAMSIM_PASSWORD}\n"
           f"ok-1,Ok,1,2,nonsense,rtsp://10.9.8.7/a,{CAMSIM_USER},{CAMSIM_PASSWORD}\n")
    assert await call("POST", "/api/cameras/import", {**admin, "Content-Type": "text/csv"},
                      data=csv.encode()) == 400
    # a stored camera whose host the server refuses: the refusal names the host, not the secret
    assert await call("POST", "/api/cameras", admin, json={
        **body, "id": "loop-cam", "profiles": {"main": {
            "url": "rtsp://127.0.0.1:9/main", "username": CAMSIM_USER,
            "password": CAMSIM_PASSWORD}}}) == 201
    _, analyst = await role_headers(client, admin, Role.ANALYST)
    peer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        offer = await make_offer(peer)
    finally:
        await peer.close()
    status = await call("POST", "/whep/loop-cam?purpose=review", {
        **analyst, "Content-Type": "application/sdp"}, data=offer.encode())
    assert status == 503
    assert "loopback" in answers[-2]
    for path in ("/api/streams", "/metrics", "/api/cameras/loop-cam", "/api/cameras/export",
                 "/api/tokens", "/api/users", "/api/audit?limit=1000"):
        assert await call("GET", path, admin) == 200, path
    assert await call("GET", "/api/owner/cameras", owner) == 200
    assert await call("GET", "/api/access-log", owner) == 200

    text = "\n".join(answers) + "\n" + caplog.text
    for secret in (CAMSIM_PASSWORD, quote(CAMSIM_PASSWORD, safe=""), BOOTSTRAP_TOKEN,
                   owner["Authorization"].split()[1], analyst["Authorization"].split()[1]):
        assert secret not in text
