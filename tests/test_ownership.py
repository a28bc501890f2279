"""Ownership is proven, not claimed, and staff cannot override owners.

Through the real application (security, catalog, hub, RTSP ingest, relay), a simulated camera on
127.0.0.1 (inside the department's allowlist) and aiortc WHEP viewers: a new owner cannot register
the department's private camera nor watch it; a stream address already registered cannot be
claimed by another owner; a supervisor cannot raise an owner's sharing nor move the camera; a
camera changes owner only when the new owner accepts, and then its open views end.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from catalog.keys import CATALOG_EVENTS, CATALOG_STORE
from catalog.model import Camera, Profile, Registrar, camera_extra, camera_from_parts
from rtcc.appkeys import HUB
from rtcc.config import SharingLevel
from rtcc.policy import Role
from tests.fixtures.auth import role_headers
from tests.fixtures.camsim import SECURE_PASSWORD, SECURE_USER, CamsimHandle
from tests.portal.conftest import PortalServer, portal_server  # noqa: F401  (fixture)
from tests.portal.helpers import Owner, call, direct_camera, signup
from tests.relay.whep_client import WhepError, WhepViewer

PUBLIC_URL = "rtsp://1.2.3.4:8554/front"
"""A public address, which owners may register; no test opens a stream from it."""
PURPOSE = {"purpose": "checking the ownership rules"}


async def wait_for_camera(server: PortalServer, camera_id: str) -> None:
    hub = server.client.app[HUB]
    for _ in range(200):
        if hub.has_camera(camera_id):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"camera {camera_id} never reached the hub")


async def department_camera(server: PortalServer, camsim: CamsimHandle, camera_id: str,
                            sharing: str = "live_always") -> dict[str, Any]:
    """The department registers the simulator's camera (its allowlist covers 127.0.0.1)."""
    body = {"id": camera_id, "name": "Hospital entrance", "lat": 39.8, "lon": -89.645,
            "sharing": sharing,
            "profiles": {"main": {"url": camsim.url("secure"), "username": SECURE_USER,
                                  "password": SECURE_PASSWORD}}}
    created: dict[str, Any] = await call(server.client, "POST", "/api/cameras", server.admin,
                                         201, json=body)
    await wait_for_camera(server, camera_id)
    return created


async def watch(server: PortalServer, camera_id: str, headers: dict[str, str],
                http: aiohttp.ClientSession) -> WhepViewer:
    viewer = WhepViewer(server.base, camera_id, headers=headers, query=PURPOSE)
    try:
        await viewer.connect(http)
        await viewer.wait_frames(5, timeout=20)
    except BaseException:
        await viewer.close()
        raise
    return viewer


async def test_a_new_owner_cannot_register_or_watch_the_departments_private_camera(
    portal_server: PortalServer, camsim: CamsimHandle,  # noqa: F811
) -> None:
    server = portal_server
    client = server.client
    await department_camera(server, camsim, "hospital")
    stranger = await signup(client)

    for sharing in ("registry_only", "live_always"):
        refused = await call(client, "POST", "/api/owner/cameras", stranger.headers, 400,
                             json=direct_camera(camsim.url("secure"), sharing=sharing))
        assert refused["field"] == "profiles.main.url"
        assert "127.0.0.1 is a loopback address" in refused["error"]
        assert "public address" in refused["error"]
        assert "through your agent" in refused["error"]
    assert (await call(client, "GET", "/api/owner/cameras", stranger.headers, 200)) == {
        "cameras": []}

    # A public camera the owner registered cannot be re-pointed at the private one either.
    own = await call(client, "POST", "/api/owner/cameras", stranger.headers, 201,
                     json=direct_camera(PUBLIC_URL, sharing="registry_only"))
    path = f"/api/owner/cameras/{own['camera']['id']}"
    moved = await call(client, "PATCH", path, stranger.headers, 400,
                       json={"profiles": {"main": {"url": camsim.url("secure")}}})
    assert "loopback" in moved["error"]

    # An owner-registered record that points at a private address (stored before this rule,
    # or a name that now resolves privately) is refused when the server connects, while the
    # department's camera at the very same address streams.
    app = client.app
    planted = Camera(id="planted", name="Planted", lat=39.8, lon=-89.645,
                     owner_id=stranger.owner_id, sharing=SharingLevel.REGISTRY_ONLY,
                     registered_by=Registrar.OWNER,
                     profiles={"main": Profile(url=camsim.url("open"))})
    await app[CATALOG_STORE].create(planted)
    await app[CATALOG_EVENTS].publish({"type": "camera.created", "id": "planted"})
    await wait_for_camera(server, "planted")
    _analyst, analyst_headers = await role_headers(client, server.admin, Role.ANALYST)
    async with aiohttp.ClientSession() as http:
        viewer = WhepViewer(server.base, "planted", headers=stranger.headers, query=PURPOSE)
        try:
            with pytest.raises(WhepError) as blocked:
                await viewer.connect(http)
        finally:
            await viewer.close()
        assert blocked.value.status == 503
        assert "127.0.0.1 is a loopback address" in blocked.value.text
        assert viewer.decoded.count == 0

        control = await watch(server, "hospital", analyst_headers, http)
        try:
            assert control.decoded.count >= 5
        finally:
            await control.close()
    audit = await call(client, "GET", "/api/audit", server.admin, 200)
    assert not any(e["action"] == "view.start" and e["camera_id"] == "hospital"
                   and e["actor"] == stranger.username and e.get("outcome") == "ok"
                   for e in audit["entries"])


async def test_a_registered_stream_address_cannot_be_claimed_by_another_owner(
    portal_server: PortalServer,  # noqa: F811
) -> None:
    client = portal_server.client
    alice = await signup(client)
    bob = await signup(client)
    first = await call(client, "POST", "/api/owner/cameras", alice.headers, 201,
                       json=direct_camera(PUBLIC_URL, sharing="on_request"))
    alices_id = first["camera"]["id"]

    for url, login in (
        (PUBLIC_URL, {}),
        (PUBLIC_URL, {"username": "intruder", "password": "another-password"}),
        (PUBLIC_URL + "?channel=1&subtype=0", {}),
        ("rtsp://1.2.3.4:8554//Front/", {}),
        ("rtsp://1.2.3.4:8554/%66ront", {}),  # a percent escape of the same path
    ):
        body = direct_camera(url, sharing="registry_only",
                             profiles={"main": {"url": url, **login}})
        taken = await call(client, "POST", "/api/owner/cameras", bob.headers, 409, json=body)
        assert taken["field"] == "profiles.main.url", url
        assert "already registered" in taken["error"]
        answer = str(taken)
        for secret in (alice.owner_id, alice.username, alices_id):
            assert secret not in answer, (url, secret)
    assert (await call(client, "GET", "/api/owner/cameras", bob.headers, 200)) == {
        "cameras": []}

    # Nor by moving a camera of one's own onto it.
    bobs = await call(client, "POST", "/api/owner/cameras", bob.headers, 201,
                      json=direct_camera("rtsp://1.2.3.4:8554/back", sharing="registry_only"))
    await call(client, "PATCH", f"/api/owner/cameras/{bobs['camera']['id']}", bob.headers, 409,
               json={"profiles": {"main": {"url": PUBLIC_URL + "?x=1"}}})
    # A different path on the same host is another camera; the owner may re-register their own.
    await call(client, "POST", "/api/owner/cameras", bob.headers, 201,
               json=direct_camera("rtsp://1.2.3.4:8554/side", sharing="registry_only"))
    await call(client, "POST", "/api/owner/cameras", alice.headers, 201,
               json=direct_camera(PUBLIC_URL, sharing="registry_only"))


async def owners_camera(server: PortalServer, owner: Owner, sharing: str) -> str:
    created = await call(server.client, "POST", "/api/owner/cameras", owner.headers, 201,
                         json=direct_camera(PUBLIC_URL, sharing=sharing))
    return str(created["camera"]["id"])


async def test_a_supervisor_cannot_raise_an_owners_sharing_or_move_the_camera(
    portal_server: PortalServer,  # noqa: F811
) -> None:
    server = portal_server
    client = server.client
    alice = await signup(client)
    bob = await signup(client)
    camera_id = await owners_camera(server, alice, "registry_only")
    _, supervisor = await role_headers(client, server.admin, Role.SUPERVISOR)
    path = f"/api/cameras/{camera_id}"

    raised = await call(client, "PATCH", path, supervisor, 403, json={"sharing": "live_always"})
    assert raised["field"] == "sharing"
    assert "only the owner can raise" in raised["error"]
    assert raised["allowed"] == "registry_only"
    moved = await call(client, "PATCH", path, supervisor, 403, json={"owner_id": bob.owner_id})
    assert moved["field"] == "owner_id"
    assert "only the owner" in moved["error"]
    feature = await call(client, "GET", path, supervisor, 200)
    replaced = {**feature["properties"], "lat": 39.8, "lon": -89.645, "sharing": "live_always"}
    await call(client, "PUT", path, supervisor, 403, json=replaced)
    as_csv = {**supervisor, "Content-Type": "text/csv"}
    for owner_id, sharing, field in ((alice.owner_id, "live_always", "sharing"),
                                     (bob.owner_id, "registry_only", "owner_id")):
        csv = (f"id,name,lat,lon,owner_id,sharing\r\n"
               f"{camera_id},Front door,39.8,-89.645,{owner_id},{sharing}\r\n")
        imported = await call(client, "POST", "/api/cameras/import?mode=upsert", as_csv, 403,
                              data=csv)
        assert imported["rows"][0]["field"] == field
        assert "nothing was written" in imported["error"]
    given = await call(client, "POST", "/api/cameras", supervisor, 403,
                       json={"id": "given-away", "name": "Given", "lat": 39.8, "lon": -89.6,
                             "owner_id": bob.owner_id})
    assert given["field"] == "owner_id"
    still = await call(client, "GET", f"/api/owner/cameras/{camera_id}", alice.headers, 200)
    assert (still["sharing"], still["owner_id"]) == ("registry_only", alice.owner_id)

    # The owner raises; staff may then lower (suspend) and restore up to the owner's choice.
    await call(client, "PATCH", f"/api/owner/cameras/{camera_id}", alice.headers, 200,
               json={"sharing": "live_emergency"})
    suspended = await call(client, "PATCH", path, supervisor, 200,
                           json={"sharing": "registry_only"})
    assert suspended["properties"]["sharing"] == "registry_only"
    assert suspended["properties"]["owner_sharing"] == "live_emergency"
    await call(client, "PATCH", path, supervisor, 200, json={"sharing": "live_emergency"})
    await call(client, "PATCH", path, supervisor, 403, json={"sharing": "live_always"})
    await call(client, "PATCH", path, supervisor, 403, json={"ptz_allowed": True})
    log = await call(client, "GET", "/api/access-log", alice.headers, 200)
    changes = [(e["details"]["before"].get("sharing"), e["details"]["after"]["sharing"])
               for e in log["entries"] if e["action"] == "consent.change"]
    assert ("live_emergency", "registry_only") in changes

    # The department's own cameras stay under the staff's full control.
    await call(client, "POST", "/api/cameras", supervisor, 201,
               json={"id": "dept-cam", "name": "Depot", "lat": 39.8, "lon": -89.6})
    opened = await call(client, "PATCH", "/api/cameras/dept-cam", supervisor, 200,
                        json={"sharing": "live_always", "ptz_allowed": True})
    assert opened["properties"]["sharing"] == "live_always"


async def test_a_transfer_takes_effect_only_when_the_new_owner_accepts(
    portal_server: PortalServer, camsim: CamsimHandle,  # noqa: F811
) -> None:
    server = portal_server
    client = server.client
    await department_camera(server, camsim, "gift-shop")
    alice = await signup(client)
    bob = await signup(client)
    _, analyst = await role_headers(client, server.admin, Role.ANALYST)

    async with aiohttp.ClientSession() as http:
        viewer = await watch(server, "gift-shop", analyst, http)
        try:
            offered = await call(client, "POST", "/api/owner/cameras/gift-shop/transfer",
                                 server.admin, 201, json={"to_owner": alice.owner_id})
            transfer_id = offered["transfer"]["id"]
            # Offered is not given: still the department's, the view goes on.
            feature = await call(client, "GET", "/api/cameras/gift-shop", server.admin, 200)
            assert feature["properties"]["owner_id"] == "department"
            await call(client, "GET", "/api/owner/cameras/gift-shop", alice.headers, 404)
            seen = viewer.decoded.count
            await viewer.wait_frames(seen + 5, timeout=10)

            await call(client, "POST", f"/api/owner/transfers/{transfer_id}/accept",
                       bob.headers, 404)
            await call(client, "POST", "/api/owner/transfers/gift-shop.0000/accept",
                       alice.headers, 404)
            listed = await call(client, "GET", "/api/owner/transfers", alice.headers, 200)
            assert [t["id"] for t in listed["incoming"]] == [transfer_id]
            assert "profiles" not in str(listed)
            assert camsim.url("secure") not in str(listed)
            assert (await call(client, "GET", "/api/owner/transfers", bob.headers, 200)) == {
                "incoming": [], "outgoing": []}

            accepted = await call(client, "POST", f"/api/owner/transfers/{transfer_id}/accept",
                                  alice.headers, 200)
            assert accepted["camera"]["owner_id"] == alice.owner_id
            assert accepted["sessions_ended"] == 1
            deadline = time.monotonic() + 5
            while (await call(client, "GET", "/api/relay/sessions", analyst, 200))["sessions"]:
                assert time.monotonic() < deadline, "the analyst's view did not end"
                await asyncio.sleep(0.05)
        finally:
            await viewer.close()

        # The new owner watches the camera the department registered (its allowlist still
        # applies: the addresses are the department's registration), and owns it now.
        mine = await watch(server, "gift-shop", alice.headers, http)
        await mine.close()
    assert (await call(client, "GET", "/api/owner/transfers", alice.headers, 200))[
        "incoming"] == []
    await call(client, "POST", f"/api/owner/transfers/{transfer_id}/accept", alice.headers, 404)

    # The owner offers it on; the other owner declines; nothing changes hands.
    again = await call(client, "POST", "/api/owner/cameras/gift-shop/transfer", alice.headers,
                       201, json={"to_owner": bob.owner_id})
    await call(client, "POST", "/api/owner/cameras/gift-shop/transfer", bob.headers, 404,
               json={"to_owner": bob.owner_id})
    await call(client, "POST", f"/api/owner/transfers/{again['transfer']['id']}/decline",
               bob.headers, 200)
    kept = await call(client, "GET", "/api/owner/cameras/gift-shop", alice.headers, 200)
    assert kept["owner_id"] == alice.owner_id
    assert kept["transfer"] is None

    audit = await call(client, "GET", "/api/audit", server.admin, 200)
    actions = {(e["action"], e["actor"]) for e in audit["entries"]
               if e["camera_id"] == "gift-shop"}
    offers = [actor for action, actor in actions if action == "camera.transfer.offer"]
    assert sorted(offers) == sorted([alice.username, "admin"]), actions
    assert ("camera.transfer.accept", alice.username) in actions
    assert ("camera.transfer.decline", bob.username) in actions


def test_a_record_stored_before_the_registrar_was_kept_is_read_safely() -> None:
    """Owner-portal cameras (ids the portal made) are read as the owner's registrations, so an
    older catalog does not give them the department's allowlist."""
    old = {"name": "Old", "profiles": {"main": {"url": "rtsp://127.0.0.1/x", "username": "",
                                                "password_ciphertext": "", "transport": "tcp"}}}
    parts = (39.8, -89.6, 0.0, 90.0, 60.0, "registry_only", "business", "owner-1")
    assert camera_from_parts("cam-0123456789ab", *parts, old).registered_by == Registrar.OWNER
    assert camera_from_parts("city-hall", *parts, old).registered_by == Registrar.DEPARTMENT
    department = Camera(id="cam-0123456789ab", name="Staff's", lat=39.8, lon=-89.6)
    assert camera_from_parts(department.id, *parts, camera_extra(department)).registered_by \
        == Registrar.DEPARTMENT
