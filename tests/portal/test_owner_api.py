"""The owners' API through the real application: sign-up, per-owner isolation, camera URL safety,
agent camera claims, department fields, sites, and the audit trail of every consent change."""

from __future__ import annotations

from typing import Any

from rtcc.policy import Role
from tests.fixtures.auth import role_headers, same_origin
from tests.portal.conftest import PortalServer
from tests.portal.helpers import OWNER_PASSWORD, call, direct_camera, signup, signup_body

CAMERA_URL = "rtsp://1.2.3.4:8554/front"
"""A public address: owners may register only those (no test here opens a stream)."""


async def test_signup_creates_owner_and_logs_in_without_one_time_code(
    portal_server: PortalServer,
) -> None:
    client = portal_server.client
    response = await client.post("/api/owner/signup", json=signup_body("corner-grocery"))
    created = await response.json()
    assert response.status == 201, created
    owner_id = created["owner"]["id"]
    assert created["user"]["role"] == "owner"
    assert created["user"]["owner_id"] == owner_id
    assert created["user"]["totp_enrolled"] is False
    assert "password" not in str(created).lower().replace("has_password", "")

    me = await (await client.get("/api/me")).json()  # the sign-up's session cookie
    assert me["username"] == "corner-grocery"
    assert me["role"] == "owner"
    profile = await (await client.get("/api/owner/profile")).json()
    assert profile["owner"]["organisation"] == "Shop of corner-grocery"
    assert profile["owner"]["contact_email"] == "corner-grocery@example.org"

    client.session.cookie_jar.clear()  # staff must use a one-time code; owners need not
    login = await client.post("/api/login", json={"username": "corner-grocery",
                                                  "password": OWNER_PASSWORD})
    assert login.status == 200, await login.text()


async def test_signup_refusals_name_the_field(portal_server: PortalServer) -> None:
    client = portal_server.client

    async def refused(body: dict[str, Any], status: int = 400, **kwargs: Any) -> dict[str, Any]:
        response = await client.post("/api/owner/signup", json=body, **kwargs)
        answer: dict[str, Any] = await response.json()
        assert response.status == status, answer
        return answer

    assert (await refused(signup_body("a1", organisation="")))["field"] == "organisation"
    assert (await refused(signup_body("a2", email="not an address")))["field"] == "email"
    short = await refused(signup_body("a3", password="short"))
    assert short["field"] == "password"
    assert "12 characters" in short["error"]
    assert (await refused({**signup_body("a6"), "username": "bad name!"}))["field"] == "username"
    assert (await refused(signup_body("a4", phone="<script>")))["field"] == "phone"
    assert (await refused(signup_body("a7", timezone="Mars/Olympus")))["field"] == "timezone"
    await signup(client, "taken")
    assert (await refused(signup_body("taken"), 409))["field"] == "username"
    foreign = await client.post("/api/owner/signup", json=signup_body("a5"),
                                headers={"Origin": "https://evil.example"})
    assert foreign.status == 403


async def test_signups_are_rate_limited_per_address(portal_server: PortalServer) -> None:
    client = portal_server.client
    await signup(client, "first-shop")
    for _ in range(4):  # well-formed attempts count, even for a name already taken
        response = await client.post("/api/owner/signup", json=signup_body("first-shop"))
        assert response.status == 409
    limited = await client.post("/api/owner/signup", json=signup_body("sixth-shop"))
    assert limited.status == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert "too many" in (await limited.json())["error"]


async def test_an_owner_cannot_read_or_change_another_owners_camera(
    portal_server: PortalServer,
) -> None:
    client = portal_server.client
    alice = await signup(client)
    bob = await signup(client)
    created = await call(client, "POST", "/api/owner/cameras", alice.headers, 201,
                         json=direct_camera(CAMERA_URL))
    camera_id = created["camera"]["id"]
    assert created["camera"]["owner_id"] == alice.owner_id

    path = f"/api/owner/cameras/{camera_id}"
    await call(client, "GET", path, bob.headers, 404)
    await call(client, "PATCH", path, bob.headers, 404, json={"sharing": "registry_only"})
    await call(client, "DELETE", path, bob.headers, 404)
    listed = await call(client, "GET", "/api/owner/cameras", bob.headers, 200)
    assert listed["cameras"] == []
    stolen = await call(client, "POST", "/api/owner/cameras", bob.headers, 400,
                        json=direct_camera(CAMERA_URL, owner_id=alice.owner_id))
    assert stolen["field"] == "owner_id"
    # the department's catalog API stays closed to owners
    await call(client, "GET", f"/api/cameras/{camera_id}", bob.headers, 403)
    await call(client, "PATCH", f"/api/cameras/{camera_id}", bob.headers, 403,
               json={"owner_id": bob.owner_id})
    still = await call(client, "GET", path, alice.headers, 200)
    assert still["sharing"] == "live_always"
    assert still["owner_id"] == alice.owner_id
    bobs_log = await call(client, "GET", "/api/access-log", bob.headers, 200)
    assert all(entry["camera_id"] != camera_id for entry in bobs_log["entries"])


async def test_camera_urls_must_be_safe(portal_server: PortalServer) -> None:
    client = portal_server.client
    owner = await signup(client)
    for url, field in (
        ("rtsp://169.254.169.254/latest", "profiles.main.url"),  # cloud metadata
        ("rtsp://10.1.2.3:554/stream", "profiles.main.url"),  # a private network
        # the department's allowlist (127.0.0.0/8 here) is not for owners' registrations
        ("rtsp://127.0.0.1:8554/front", "profiles.main.url"),
        ("rtsp://user:pw@127.0.0.1/stream", "profiles.main.url"),  # credentials in the URL
        ("exec:id", "profiles.main.url"),
    ):
        refused = await call(client, "POST", "/api/owner/cameras", owner.headers, 400,
                             json=direct_camera(url))
        assert refused["field"] == field, (url, refused)
    no_video = await call(client, "POST", "/api/owner/cameras", owner.headers, 400,
                          json=direct_camera(CAMERA_URL, profiles={}))
    assert "live sharing needs" in no_video["error"]
    chosen_id = await call(client, "POST", "/api/owner/cameras", owner.headers, 400,
                           json=direct_camera(CAMERA_URL, id="my-own-id"))
    assert chosen_id["field"] == "id"
    located = await call(client, "POST", "/api/owner/cameras", owner.headers, 201,
                         json=direct_camera(CAMERA_URL, profiles={}, sharing="registry_only"))
    assert located["camera"]["profiles"] == {}


async def test_agent_cameras_can_only_be_claimed_by_their_owner(
    portal_server: PortalServer,
) -> None:
    client = portal_server.client
    alice = await signup(client)
    bob = await signup(client)
    enrollment = await call(client, "POST", "/api/agent/enrollments", bob.headers, 201, json={})
    enrolled = await call(client, "POST", "/api/agent/enroll", {}, 201,
                          json={"token": enrollment["token"], "name": "back office"})
    camera_id = f"{enrolled['agent_id']}-0123456789"
    body = {"id": camera_id, "name": "Back door", "lat": 39.8, "lon": -89.6,
            "sharing": "live_emergency", "via_agent": True}

    claimed = await call(client, "POST", "/api/owner/cameras", alice.headers, 400, json=body)
    assert claimed["field"] == "id"
    with_url = await call(client, "POST", "/api/owner/cameras", bob.headers, 400,
                          json={**body, "profiles": {"main": {"url": CAMERA_URL}}})
    assert with_url["field"] == "profiles"
    created = await call(client, "POST", "/api/owner/cameras", bob.headers, 201, json=body)
    assert created["camera"]["id"] == camera_id
    assert created["camera"]["via_agent"] is True
    switched = await call(client, "PATCH", f"/api/owner/cameras/{camera_id}", bob.headers, 400,
                          json={"via_agent": False})
    assert switched["field"] == "via_agent"


async def test_consent_changes_are_audited_and_department_fields_refused(
    portal_server: PortalServer,
) -> None:
    client = portal_server.client
    owner = await signup(client)
    created = await call(client, "POST", "/api/owner/cameras", owner.headers, 201,
                         json=direct_camera(CAMERA_URL))
    path = f"/api/owner/cameras/{created['camera']['id']}"
    camera = await call(client, "GET", path, owner.headers, 200)

    recorded = await call(client, "PATCH", path, owner.headers, 400, json={"record": True})
    assert recorded["field"] == "record"
    await call(client, "PATCH", path, owner.headers, 200, json=camera)  # a GET body goes back
    windows = [{"days": ["sat", "sun"], "start": "10:00", "end": "14:00"}]
    changed = await call(client, "PATCH", path, owner.headers, 200,
                         json={"sharing": "registry_only", "windows": windows,
                               "timezone": "America/Chicago", "ptz_allowed": True})
    assert changed["camera"]["sharing"] == "registry_only"
    assert changed["camera"]["windows"] == windows
    assert changed["sessions_ended"] == 0
    bad_window = await call(client, "PATCH", path, owner.headers, 400,
                            json={"windows": [{"days": ["someday"], "start": "10:00",
                                               "end": "14:00"}]})
    assert bad_window["field"].startswith("windows[0]")
    await call(client, "PATCH", path, owner.headers, 200, json={"sharing": "on_request"})

    log = await call(client, "GET", "/api/access-log", owner.headers, 200)
    changes = [entry for entry in log["entries"] if entry["action"] == "consent.change"]
    assert [(e["details"]["before"].get("sharing"), e["details"]["after"]["sharing"])
            for e in changes] == [("registry_only", "on_request"),
                                  ("live_always", "registry_only"),
                                  (None, "live_always")]
    assert all(entry["actor"] == owner.username for entry in changes)


async def test_sites_belong_to_their_owner(portal_server: PortalServer) -> None:
    client = portal_server.client
    alice = await signup(client)
    bob = await signup(client)
    site = await call(client, "POST", "/api/owner/sites", alice.headers, 201,
                      json={"address": "1 Main St", "soft_target": True})
    assert (await call(client, "GET", "/api/owner/sites", bob.headers, 200))["sites"] == []
    refused = await call(client, "POST", "/api/owner/cameras", bob.headers, 400,
                         json=direct_camera(CAMERA_URL, site_id=site["id"]))
    assert refused["field"] == "site_id"
    await call(client, "DELETE", f"/api/owner/sites/{site['id']}", bob.headers, 404)
    await call(client, "POST", "/api/owner/cameras", alice.headers, 201,
               json=direct_camera(CAMERA_URL, site_id=site["id"]))
    busy = await call(client, "DELETE", f"/api/owner/sites/{site['id']}", alice.headers, 409)
    assert "cameras are registered" in busy["error"]


async def test_staff_cannot_use_the_owner_api(portal_server: PortalServer) -> None:
    client = portal_server.client
    _, analyst = await role_headers(client, portal_server.admin, Role.ANALYST)
    await call(client, "GET", "/api/owner/cameras", analyst, 403)
    await call(client, "POST", "/api/owner/cameras", {**analyst, **same_origin(client)}, 403,
               json=direct_camera(CAMERA_URL))
