"""Facility profiles, enrolment and panic alerts through the real application's API: alerts
stored before they are answered, replays, floods, revoked and foreign devices refused, the
analyst's steps on the timeline, the CAD incident opened and closed, floor plans checked by
content."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from facilities.plans import MAX_UPLOAD_BYTES
from rtcc.config import FacilitiesConfig
from server.app import create_app
from tests.facilities.helpers import School, make_school
from tests.fixtures.auth import MakeClient, bearer, security_settings


async def _start(tmp_path: Path, make_client: MakeClient, bootstrap_token: str
                 ) -> tuple[TestClient[Any, Any], dict[str, str]]:
    app = create_app(security_settings(tmp_path).model_copy(update={
        "facilities": FacilitiesConfig(flood_alerts=3)}))
    return await make_client(app), bearer(bootstrap_token)


async def _raise(client: TestClient[Any, Any], school: School, alert_id: str,
                 **fields: Any) -> tuple[int, dict[str, Any]]:
    response = await client.post("/panic/api/alerts", headers=school.device(), json={
        "id": alert_id, "facility_id": school.facility["id"], "level": "lockdown", **fields})
    return response.status, await response.json()


async def test_an_alert_is_stored_replayed_stepped_and_cleared(
        tmp_path: Path, make_client: MakeClient, bootstrap_token: str) -> None:
    client, admin = await _start(tmp_path, make_client, bootstrap_token)
    school = await make_school(client, admin)

    before = await client.get(f"/api/panic/facilities/{school.facility['id']}",
                              headers=school.analyst)
    assert before.status == 403  # shared only during an alert
    assert "only during an alert" in (await before.json())["error"]

    status, first = await _raise(client, school, "press-0001-aaaa", lat=39.8001, lon=-89.645)
    assert status == 201, first
    status, again = await _raise(client, school, "press-0001-aaaa")
    assert status == 200
    assert again["replay"]
    assert again["alert"]["id"] == first["alert"]["id"]
    alert_id = first["alert"]["id"]

    shown = await (await client.get(f"/api/panic/alerts/{alert_id}",
                                    headers=school.analyst)).json()
    assert shown["room"]["number"] == "104"
    assert shown["facility"]["name"] == "Lincoln Elementary"
    assert [e["step"] for e in shown["timeline"]] == ["triggered", "incident.opened"]
    profile = await (await client.get(f"/api/panic/facilities/{school.facility['id']}",
                                      headers=school.analyst)).json()
    assert profile["contacts"][0]["name"] == "Principal Ruiz"
    plan = await client.get(f"/api/facilities/{school.facility['id']}/floors/"
                            f"{school.floor['id']}/plan", headers=school.analyst)
    assert plan.status == 200
    assert (await plan.read()).startswith(b"\x89PNG")

    board = await (await client.get("/api/cad/incidents", headers=school.analyst)).json()
    (incident,) = [i for i in board["incidents"] if i["id"] == shown["incident_id"]]
    assert incident["type_code"] == "PANIC-LOCKDOWN"
    assert "room 104" in incident["type_text"]

    for action in ("acknowledge", "dispatch", "checkin"):
        response = await client.post(f"/api/panic/alerts/{alert_id}/{action}",
                                     headers=school.analyst, json={})
        assert response.status == 200, await response.text()
    state = await (await client.get(f"/panic/api/alerts/{alert_id}",
                                    headers=school.device())).json()
    assert state["acknowledged"]
    assert state["checkin"] is not None
    answered = await client.post(f"/panic/api/alerts/{alert_id}/checkin",
                                 headers=school.device(), json={"status": "need_help"})
    assert answered.status == 200
    state = await (await client.get(f"/panic/api/alerts/{alert_id}",
                                    headers=school.device())).json()
    assert state["checkin"] is None
    cleared = await client.post(f"/api/panic/alerts/{alert_id}/all_clear",
                                headers=school.analyst, json={})
    assert cleared.status == 200
    state = await (await client.get(f"/panic/api/alerts/{alert_id}",
                                    headers=school.device())).json()
    assert state["all_clear"]
    steps = [e["step"] for e in (await (await client.get(
        f"/api/panic/alerts/{alert_id}", headers=school.analyst)).json())["timeline"]]
    assert steps == ["triggered", "incident.opened", "acknowledged", "dispatched",
                     "checkin.request", "checkin.answer", "all_clear", "relocked"]
    late = await client.post(f"/api/panic/alerts/{alert_id}/acknowledge",
                             headers=school.analyst, json={})
    assert late.status == 409
    board = await (await client.get("/api/cad/incidents", params={"all": "1"},
                                    headers=school.analyst)).json()
    closed = [i for i in board["incidents"] if i["id"] == shown["incident_id"]]
    assert not closed or closed[0]["closed"]
    audit = await (await client.get("/api/audit", params={"action": "panic.all_clear"},
                                    headers=admin)).json()
    assert audit["entries"]
    assert audit["entries"][0]["target"] == f"alert:{alert_id}"


async def test_bad_devices_floods_and_plans_are_refused(
        tmp_path: Path, make_client: MakeClient, bootstrap_token: str) -> None:
    client, admin = await _start(tmp_path, make_client, bootstrap_token)
    school = await make_school(client, admin)
    fid, floor = school.facility["id"], school.floor["id"]

    unknown = await client.post("/panic/api/alerts", headers={"X-Device-Token": "nope"},
                                json={"id": "press-0002-aaaa"})
    assert unknown.status == 403
    assert "enrol it again" in (await unknown.json())["error"]
    status, wrong = await _raise(client, school, "press-0003-aaaa", facility_id="fac-other")
    assert status == 403
    assert "another facility" in wrong["error"]
    status, foreign = await _raise(client, school, "press-0005-aaaa", room_id="rm-elsewhere")
    assert status == 400
    assert "not at this device's facility" in foreign["error"]
    status, bad = await _raise(client, school, "x")
    assert status == 400
    assert "retry" in bad["error"]

    for n in range(3):
        status, _ = await _raise(client, school, f"flood-{n:04d}-aaaa", drill=True)
        assert status == 201
    status, flood = await _raise(client, school, "flood-0009-aaaa", drill=True)
    assert status == 429
    assert "911" in flood["error"]
    status, _ = await _raise(client, school, "flood-0000-aaaa", drill=True)
    assert status == 200  # a retry of a stored alert is still answered

    fake = await client.put(f"/api/facilities/{fid}/floors/{floor}/plan", data=b"<html>no</html>",
                            headers={**school.owner, "Content-Type": "application/pdf"})
    assert fake.status == 415
    assert "not one" in (await fake.json())["error"]
    junk = await client.put(f"/api/facilities/{fid}/floors/{floor}/plan", data=b"\x00" * 100,
                            headers={**school.owner, "Content-Type": "image/png"})
    assert junk.status == 415
    assert "neither an image nor a PDF" in (await junk.json())["error"]
    huge = await client.put(f"/api/facilities/{fid}/floors/{floor}/plan",
                            data=b"\x00" * (MAX_UPLOAD_BYTES + 1),
                            headers={**school.owner, "Content-Type": "image/png"})
    assert huge.status == 413

    again = await client.post("/panic/api/enrol", json={"secret": "enrol-unknown"})
    assert again.status == 403
    revoked = await client.post(f"/api/facilities/{fid}/devices/{school.device_id}/revoke",
                                headers=school.owner)
    assert revoked.status == 200
    status, refused = await _raise(client, school, "press-0004-aaaa")
    assert status == 403
    assert "revoked" in refused["error"]
    other_owner = await client.get(f"/api/facilities/{fid}", headers=school.analyst)
    assert other_owner.status == 403
