"""Exports through the HTTP API: made, downloaded and verified; download ids that try to be
paths are refused; the wrong role is refused and audited; links expire."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from evidence import EVIDENCE, verify_main
from evidence.exports import register
from evidence.store import EvidenceStore
from rtcc.config import SharingLevel
from rtcc.policy import Role
from security.audit import AuditEntry
from security.core import SECURITY
from tests.evidence.helpers import (
    app_of,
    evidence_app,
    frames_from,
    make_h264,
    run_text,
    write_segments,
)
from tests.fixtures.auth import (
    FakeClock,
    MakeClient,
    TestUser,
    bearer,
    role_headers,
    security_settings,
)
from tests.security.harness import Directory

START = time.time() - 3600


@dataclass
class World:
    client: TestClient[Any, Any]
    admin: dict[str, str]
    investigator: TestUser
    inv: dict[str, str]
    clock: FakeClock
    data_dir: Path


@pytest.fixture
async def world(tmp_path: Path, bootstrap_token: str, make_client: MakeClient) -> World:
    settings = security_settings(tmp_path)
    store = EvidenceStore.open_in(settings.data_dir)
    try:
        write_segments(store, settings.data_dir / "evidence", "cam1",
                       frames_from(make_h264(tmp_path, 8.0), START), 3.0)
    finally:
        store.close()
    directory = Directory()
    directory.add("cam1", SharingLevel.LIVE_ALWAYS, owner_id="city")
    clock = FakeClock()
    client = await make_client(evidence_app(settings, directory, clock=clock))
    admin = bearer(bootstrap_token)
    investigator, inv = await role_headers(client, admin, Role.INVESTIGATOR)
    return World(client, admin, investigator, inv, clock, settings.data_dir)


async def _export(world: World, headers: dict[str, str] | None = None) -> Any:
    return await world.client.post("/api/exports", headers=headers or world.inv, json={
        "camera": "cam1", "from": START + 1.0, "to": START + 7.0, "case": "2024-0042",
        "reason": "robbery"})


async def _audit(world: World, action: str) -> list[AuditEntry]:
    return await app_of(world.client)[SECURITY].audit.query(action=action, limit=100)


async def test_export_download_and_verify(world: World, tmp_path: Path) -> None:
    response = await _export(world)
    made = await response.json()
    assert response.status == 201, made
    assert len(made["segments"]) >= 2  # 3 s segments, 6 s range
    download = await world.client.get(made["download"], headers=world.inv)
    assert download.status == 200
    assert download.headers["Content-Disposition"].startswith("attachment;")
    package = await download.read()
    assert hashlib.sha256(package).hexdigest() == made["sha256"]
    saved = tmp_path / "download.tar"
    saved.write_bytes(package)
    published = await world.client.get("/api/evidence/public-key")  # what a court is given
    assert published.status == 200
    trusted = tmp_path / "department.pem"
    trusted.write_text((await published.json())["pem"])
    code, text = run_text(verify_main, saved, key_path=trusted)
    assert code == 0, text

    exports = [e for e in await _audit(world, "evidence.export") if e.outcome == "ok"]
    assert exports
    assert exports[0].target == f"export:{made['export_id']}"
    assert made["sha256"] in exports[0].details
    assert made["id"] not in exports[0].details  # the download token is never logged
    downloads = [e for e in await _audit(world, "evidence.download") if e.outcome == "ok"]
    assert downloads[0].actor == world.investigator.username

    # Someone else's export: not found for another investigator, available to a supervisor.
    _, stranger = await role_headers(world.client, world.admin, Role.INVESTIGATOR)
    assert (await world.client.get(made["download"], headers=stranger)).status == 404
    _, supervisor = await role_headers(world.client, world.admin, Role.SUPERVISOR)
    assert (await world.client.get(made["download"], headers=supervisor)).status == 200
    listed = await (await world.client.get("/api/exports", headers=world.inv)).json()
    assert [e["export_id"] for e in listed["exports"]] == [made["export_id"]]
    assert "id" not in listed["exports"][0]


TRAVERSALS = [
    "../../evidence.sqlite3",
    "%2e%2e%2f%2e%2e%2fevidence.sqlite3",
    "%2e%2e%2fsecurity.sqlite3",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "....%2F%2F....%2F%2Fetc%2Fpasswd",
    "%2Fetc%2Fpasswd",
    "..",
    "%2e%2e",
    "exp-0000000000000000.tar",
]


async def test_download_ids_that_are_paths_are_refused(world: World) -> None:
    made = await (await _export(world)).json()
    package = world.data_dir / "evidence" / "exports" / f"{made['export_id']}.tar"
    assert package.exists()
    attempts = [*TRAVERSALS, str(package), quote(str(package), safe="")]
    for attempt in attempts:
        url = URL(f"/api/exports/{attempt}/download", encoded=True)
        response = await world.client.get(url, headers=world.inv)
        assert response.status in (400, 404), attempt
        body = await response.read()
        assert b"root:" not in body, attempt
        assert b"SQLite format" not in body, attempt
        assert not body.startswith(b"manifest.json"), attempt
    refused = [e for e in await _audit(world, "evidence.download") if e.outcome == "refused"]
    assert refused  # those that reached the handler were audited as refused
    assert not [e for e in await _audit(world, "evidence.download") if e.outcome == "ok"]


async def test_a_tampered_export_row_cannot_reach_outside_the_exports_folder(
    world: World
) -> None:
    app = app_of(world.client)
    evidence = app[EVIDENCE]
    now = world.clock()
    sneaky = await evidence.store.call(register, export_id="exp-sneaky", file_name="../../security.sqlite3",
                      camera_id="cam1", case_number="x", created_by="x",
                      created_by_id=world.investigator.id, now=now, expires_at=now + 3600,
                      size=1, sha256="0" * 64, grant_kind="department",
                      grant_id="department:cam1", range_start=now, range_end=now + 1)
    outside = world.data_dir / "secret.tar"
    outside.write_text("secret")
    link = evidence.root / "exports" / "exp-1111111111111111.tar"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside)
    linked = await evidence.store.call(register, export_id="exp-linked", file_name=link.name,
                      camera_id="cam1", case_number="x", created_by="x",
                      created_by_id=world.investigator.id, now=now, expires_at=now + 3600,
                      size=1, sha256="0" * 64, grant_kind="department",
                      grant_id="department:cam1", range_start=now, range_end=now + 1)
    for token in (sneaky, linked):
        response = await world.client.get(f"/api/exports/{token}/download", headers=world.inv)
        assert response.status == 404
        assert b"secret" not in await response.read()
        assert b"SQLite" not in await response.read()
    refused = [e for e in await _audit(world, "evidence.download") if e.outcome == "refused"]
    assert {e.target for e in refused} >= {"export:exp-sneaky", "export:exp-linked"}


async def test_an_export_without_the_right_role_is_refused_and_audited(world: World) -> None:
    for role in (Role.ANALYST, Role.OWNER, Role.AGENT):
        user, headers = await role_headers(world.client, world.admin, role)
        response = await _export(world, headers)
        assert response.status == 403
        assert (await response.json())["error"] == f"the {role} role may not use this"
        denied = [e for e in await _audit(world, "access.denied") if e.actor == user.username]
        assert denied
        assert denied[0].target == "POST /api/exports"
    app = app_of(world.client)
    assert await app[EVIDENCE].store.call(EvidenceStore.fetchall, "SELECT * FROM exports") == []
    assert not (world.data_dir / "evidence" / "exports").exists()
    assert [e for e in await _audit(world, "evidence.export")] == []


async def test_download_links_expire(world: World) -> None:
    made = await (await _export(world)).json()
    world.clock.advance(25 * 3600)
    response = await world.client.get(made["download"], headers=world.inv)
    assert response.status == 410
    refused = [e for e in await _audit(world, "evidence.download") if e.outcome == "refused"]
    assert "expired" in refused[0].details


async def test_an_export_of_a_range_without_footage_says_so(world: World) -> None:
    response = await world.client.post("/api/exports", headers=world.inv, json={
        "camera": "cam1", "from": START - 600, "to": START - 300, "case": "2024-1"})
    assert response.status == 404
    assert "there is no recording of camera cam1" in (await response.json())["error"]
    failed = [e for e in await _audit(world, "evidence.export") if e.outcome == "failed"]
    assert failed
    assert failed[0].camera_id == "cam1"
