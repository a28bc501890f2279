"""CAD feeds over HTTP: EIDOs stored before they are acknowledged and pushed to the board."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from rtcc.config import IncidentsConfig, Settings
from rtcc.policy import Role
from server.app import create_app
from tests.fixtures.auth import MakeClient, bearer, role_headers, security_settings
from tests.incidents.eidos import eido, tracking_id


def settings(tmp_path: Path, **incidents: Any) -> Settings:
    base = security_settings(tmp_path)
    return base.model_copy(update={"incidents": IncidentsConfig(**incidents)})


async def read_event(response: ClientResponse) -> dict[str, Any]:
    """The next ``event: incident`` on an SSE stream (heartbeats and comments skipped)."""
    event = ""
    while True:
        line = (await response.content.readline()).decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == "incident":
            result: dict[str, Any] = json.loads(line[6:])
            return result


async def clients(client: TestClient[Any, Any], bootstrap_token: str
                  ) -> tuple[dict[str, str], dict[str, str]]:
    admin = bearer(bootstrap_token)
    _, cad = await role_headers(client, admin, Role.INTEGRATION)
    _, analyst = await role_headers(client, admin, Role.ANALYST)
    return cad, analyst


async def test_eido_is_stored_then_pushed_to_the_board(
        tmp_path: Path, bootstrap_token: str, make_client: MakeClient) -> None:
    client = await make_client(create_app(settings(tmp_path)))
    cad, analyst = await clients(client, bootstrap_token)

    stream = await client.get("/api/cad/incidents/events", headers=analyst)
    assert stream.status == 200
    response = await client.post("/api/cad/eido", json=eido(1, minute=1), headers=cad)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["accepted"][0]["outcome"] == "created"

    pushed = await asyncio.wait_for(read_event(stream), 15)
    assert pushed["id"] == tracking_id(1)
    assert pushed["location"]["kind"] == "point"
    assert pushed["security_incident_id"].startswith("cad-")

    # Out of order and duplicate: stored in the history, the incident unchanged, no event.
    older = await client.post("/api/cad/eido", json=[eido(1, minute=0, status="PEND"),
                                                      eido(1, minute=1)], headers=cad)
    assert [a["outcome"] for a in (await older.json())["accepted"]] == ["older", "duplicate"]
    closing = await client.post("/api/cad/eido", json=eido(1, minute=5, status="CLSD"),
                                headers=cad)
    assert closing.status == 200
    closed = await asyncio.wait_for(read_event(stream), 15)
    assert closed["closed"] is True  # the next event is the close: the older ones made none
    stream.close()

    listing = await client.get("/api/cad/incidents?status=all", headers=analyst)
    (incident,) = (await listing.json())["incidents"]
    assert incident["status"] == "CLSD"
    assert (await (await client.get("/api/cad/incidents", headers=analyst)).json()) == {
        "incidents": []}
    detail = await (await client.get(f"/api/cad/incidents/{incident['security_incident_id']}",
                                     headers=analyst)).json()
    assert [h["outcome"] for h in detail["history"]] == [
        "created", "older", "duplicate", "updated"]
    assert detail["history"][0]["sender"].startswith("integration:")


async def test_hostile_location_is_refused_naming_the_field(
        tmp_path: Path, bootstrap_token: str, make_client: MakeClient) -> None:
    client = await make_client(create_app(settings(tmp_path)))
    cad, analyst = await clients(client, bootstrap_token)
    await client.post("/api/cad/eido", json=eido(1), headers=cad)

    hostile = eido(2, location_xml='<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM '
                                   '"file:///etc/passwd">]><r>&x;</r>')
    response = await client.post("/api/cad/eido", json=hostile, headers=cad)
    assert response.status == 400
    body = await response.json()
    (problem,) = body["problems"]
    assert problem["path"] == "locationComponent[0].locationByValue"
    assert "DTD" in problem["found"]
    assert "passwd" not in json.dumps(body).replace("file:///etc/passwd", "")

    # Field-level errors and oversize bodies are refused too; the board still holds incident 1.
    bad = await client.post("/api/cad/eido", json={"incidentTrackingIdentifier": 5},
                            headers=cad)
    assert bad.status == 400
    assert (await bad.json())["problems"]
    huge = await client.post("/api/cad/eido", data=b"[" + b" " * 2_000_000 + b"]",
                             headers={**cad, "Content-Type": "application/json"})
    assert huge.status == 413
    listing = await (await client.get("/api/cad/incidents", headers=analyst)).json()
    assert [i["id"] for i in listing["incidents"]] == [tracking_id(1)]

    # Only integration accounts (and administrators) feed incidents; they see no board.
    assert (await client.post("/api/cad/eido", json=eido(3), headers=analyst)).status == 403
    assert (await client.get("/api/cad/incidents", headers=cad)).status == 403


async def test_civic_address_is_geocoded_or_left_unknown(
        tmp_path: Path, bootstrap_token: str, make_client: MakeClient) -> None:
    from cadsim.scenario import Place, pidf_civic

    points = Path(__file__).parents[2] / "configs" / "demo-address-points.csv"
    client = await make_client(create_app(settings(tmp_path, address_points=points)))
    cad, analyst = await clients(client, bootstrap_token)
    place = Place("Adams Street", "220", "E", "Adams", "St", 0.0, 0.0)  # in the points file
    known = eido(1, location_xml=pidf_civic(place, "2026-05-04T15:00:00Z"))
    unknown = eido(2, location_xml=pidf_civic(
        Place("Nowhere", "9999", "", "Nowhere", "Rd", 0.0, 0.0), "2026-05-04T15:00:00Z"))
    response = await client.post("/api/cad/eido", json=[known, unknown], headers=cad)
    assert response.status == 200, await response.text()
    listing = await (await client.get("/api/cad/incidents", headers=analyst)).json()
    by_id = {i["id"]: i for i in listing["incidents"]}
    assert by_id[tracking_id(1)]["location"]["kind"] == "point"
    assert by_id[tracking_id(1)]["location"]["lat"] == 39.801520
    assert by_id[tracking_id(2)]["location"]["kind"] == "unknown"
    assert "9999" in by_id[tracking_id(2)]["location"]["address"]


async def test_location_reference_outside_the_lis_hosts_is_not_fetched(
        tmp_path: Path, bootstrap_token: str, make_client: MakeClient) -> None:
    client = await make_client(create_app(settings(tmp_path, lis_hosts=["lis.example.net"])))
    cad, analyst = await clients(client, bootstrap_token)
    document = eido(1)
    component = document["locationComponent"][0]
    del component["locationByValue"]
    component["locationByReferenceUrl"] = "https://127.0.0.1/loc?id=1"
    assert (await client.post("/api/cad/eido", json=document, headers=cad)).status == 200
    listing = await (await client.get("/api/cad/incidents", headers=analyst)).json()
    location = listing["incidents"][0]["location"]
    assert location["kind"] == "unknown"
    assert "not a configured LIS host" in location["reason"]


FIELD_MAP = {"fields": {"tracking_id": "IncidentNumber", "updated_at": "LastUpdate",
                        "type_code": "CallType", "status": "Status", "lat": "Lat", "lon": "Lon",
                        "address": "Address"},
             "agency_domain": "cad.test.example"}


async def test_webhook_maps_flat_records(
        tmp_path: Path, bootstrap_token: str, make_client: MakeClient) -> None:
    client = await make_client(create_app(settings(tmp_path, webhook_field_map=FIELD_MAP)))
    cad, analyst = await clients(client, bootstrap_token)
    record = {"IncidentNumber": "2026-0042", "LastUpdate": "2026-05-04T15:00:00Z",
              "CallType": "ROBB", "Status": "DISP", "Lat": 39.8, "Lon": -89.65}
    response = await client.post("/api/cad/webhook", json=record, headers=cad)
    assert response.status == 200, await response.text()
    csv_text = ("IncidentNumber,LastUpdate,CallType,Status,Lat,Lon\n"
                "2026-0042,2026-05-04T15:05:00Z,ROBB,CLSD,39.8,-89.65\n")
    closed = await client.post("/api/cad/webhook", data=csv_text,
                               headers={**cad, "Content-Type": "text/csv"})
    assert closed.status == 200, await closed.text()
    assert (await closed.json())["accepted"][0]["outcome"] == "updated"
    listing = await (await client.get("/api/cad/incidents?status=all", headers=analyst)).json()
    (incident,) = listing["incidents"]
    assert incident["id"] == "urn:emergency:uid:incidentid:2026-0042:cad.test.example"
    assert incident["closed"] is True

    bad = await client.post("/api/cad/webhook", json={"IncidentNumber": "x"}, headers=cad)
    assert bad.status == 400
    assert any(p["path"] == "LastUpdate" or "LastUpdate" in p["path"]
               for p in (await bad.json())["problems"])


async def test_the_sample_eidos_load_or_name_their_problems(
        tmp_path: Path, bootstrap_token: str, make_client: MakeClient) -> None:
    samples = Path(__file__).parents[1] / "fixtures" / "nena"
    client = await make_client(create_app(settings(tmp_path)))
    cad, _ = await clients(client, bootstrap_token)
    outcomes: dict[str, int] = {}
    for sample in sorted(samples.glob("*.json")):
        response = await client.post("/api/cad/eido", data=sample.read_bytes(),
                                     headers={**cad, "Content-Type": "application/json"})
        outcomes[sample.name] = response.status
        if response.status == 400:
            assert (await response.json())["problems"], sample.name
        else:
            assert response.status == 200, (sample.name, await response.text())
    assert outcomes["dispatch-point-units-notes.json"] == 200
    assert outcomes["call-transfer-civic.json"] == 200
    assert outcomes["no-tracking-id-bad-priority.json"] == 400
