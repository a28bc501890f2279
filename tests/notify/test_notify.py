"""Targeted notifications end to end: the real application, a CAD EIDO, an aiosmtpd server
receiving the mails and an aiohttp webhook receiver; every CAP message checked against the
OASIS CAP 1.2 schema."""

from __future__ import annotations

import asyncio
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from catalog.keys import CATALOG_STORE
from catalog.model import Camera, Owner, Profile, Registrar
from notify.geo import EARTH_RADIUS_M
from rtcc.config import (
    EmergencyPolicy,
    IncidentsConfig,
    NotifyConfig,
    NotifyRule,
    Settings,
    SharingLevel,
)
from rtcc.policy import Role
from server.app import create_app
from tests.fixtures.auth import MakeClient, bearer, role_headers, security_settings
from tests.incidents.eidos import eido
from tests.notify.sinks import MailSink, SmtpServer, WebhookReceiver, until, validate_cap

NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
INCIDENT = (39.8, -89.645)
METRES_PER_DEGREE = EARTH_RADIUS_M * math.pi / 180


def north(metres: float) -> tuple[float, float]:
    return INCIDENT[0] + metres / METRES_PER_DEGREE, INCIDENT[1]


def east(metres: float) -> tuple[float, float]:
    return INCIDENT[0], INCIDENT[1] + metres / (METRES_PER_DEGREE
                                                * math.cos(math.radians(INCIDENT[0])))


def settings(tmp_path: Path, smtp_port: int, webhook_host: str = "127.0.0.1",
             mode: str = "automatic") -> Settings:
    base = security_settings(tmp_path, allow_private_camera_hosts=["127.0.0.0/8"])
    return base.model_copy(update={"notify": NotifyConfig(
        sender="rtcc@pd.example", smtp_host="127.0.0.1", smtp_port=smtp_port,
        webhook_hosts=[webhook_host], public_url="http://127.0.0.1:9",
        retry_seconds=0.2, rules=[NotifyRule(codes=["SHOTS"], keywords=["active shooter"],
                                             categories=["school", "hospital"],
                                             distance_m=500, mode=mode)])})  # type: ignore[arg-type]


async def add(client: TestClient[Any, Any], admin: dict[str, str], facility_id: str,
              category: str, at: tuple[float, float], *contacts: dict[str, str],
              polygon: list[list[float]] | None = None) -> None:
    body: dict[str, Any] = {"id": facility_id, "name": facility_id.replace("-", " ").title(),
                            "category": category, "lat": at[0], "lon": at[1],
                            "contacts": list(contacts)}
    if polygon:
        body["polygon"] = polygon
    response = await client.post("/api/notify/facilities", json=body, headers=admin)
    assert response.status == 201, await response.text()


def mail(address: str) -> dict[str, str]:
    return {"channel": "email", "address": address}


def cap_of(document: str) -> ET.Element:
    validate_cap(document)
    return ET.fromstring(document)


def text(root: ET.Element, path: str) -> str:
    found = root.find(path, NS)
    assert found is not None, path
    assert found.text is not None, path
    return found.text


async def test_an_incident_warns_exactly_the_facilities_inside_the_distance(
        tmp_path: Path, bootstrap_token: str, make_client: MakeClient) -> None:
    hooks = WebhookReceiver()
    await hooks.start()
    with SmtpServer() as sink:
        client = await make_client(create_app(settings(tmp_path, _port(sink))))
        admin = bearer(bootstrap_token)
        _, cad = await role_headers(client, admin, Role.INTEGRATION)
        _, analyst = await role_headers(client, admin, Role.ANALYST)
        await add(client, admin, "lincoln-school", "school", north(499),
                  mail("office@lincoln.example"))
        await add(client, admin, "far-school", "school", north(501),
                  mail("office@far.example"))
        await add(client, admin, "st-john-hospital", "hospital", east(300),
                  mail("security@stjohn.example"),
                  {"channel": "webhook", "address": f"{hooks.url}/hook/stjohn"})
        await add(client, admin, "grace-church", "worship", east(50),
                  mail("pastor@grace.example"))
        # A campus whose footprint reaches to 10 m of the distance, its centre far outside.
        edge = north(490)[0]
        await add(client, admin, "campus", "school", north(900), mail("dean@campus.example"),
                  polygon=[[edge, -89.646], [edge, -89.644], [north(1200)[0], -89.644],
                           [north(1200)[0], -89.646]])

        response = await client.post("/api/cad/eido", json=eido(7, lat=INCIDENT[0],
                                                                lon=INCIDENT[1]), headers=cad)
        assert response.status == 200, await response.text()
        tracking = (await response.json())["accepted"][0]["id"]

        expected = {"office@lincoln.example", "security@stjohn.example", "dean@campus.example"}
        await until(lambda: {a for m in sink.received() for a in m.to} >= expected,
                    what="the mails to the facilities inside 500 m")
        await until(lambda: len(hooks.received) == 1, what="the hospital's webhook")
        assert {a for m in sink.received() for a in m.to} == expected  # not 1 m outside
        assert len(sink.received()) == 3

        for received in sink.received():
            root = cap_of(received.cap)
            assert text(root, "cap:scope") == "Private"
            assert text(root, "cap:msgType") == "Alert"
            assert set(text(root, "cap:addresses").split()) == {
                "lincoln-school", "st-john-hospital", "campus"}
            assert text(root, "cap:incidents") == tracking
            assert text(root, "cap:info/cap:eventCode/cap:value") == "SHOTS"
            assert received.message["Message-ID"]
        hook = hooks.received[0]
        assert hook.content_type == "application/cap+xml"
        cap_of(hook.body.decode())
        assert hook.key.endswith("/webhook")

        alerts = (await (await client.get(f"/api/notify/alerts?incident={tracking}",
                                          headers=analyst)).json())["alerts"]
        assert len(alerts) == 1
        detail = await (await client.get(f"/api/notify/alerts/{alerts[0]['id']}",
                                         headers=analyst)).json()
        states = {(d["address"], d["state"]) for d in detail["deliveries"]}
        assert (f"{hooks.url}/hook/stjohn", "delivered") in states
        assert ("office@lincoln.example", "sent") in states

        # One click on the link in the mail acknowledges it.
        (lincoln,) = sink.to("office@lincoln.example")
        link = re.search(r"http://127\.0\.0\.1:9(/notify/ack/\S+)", lincoln.body)
        assert link is not None
        page = await client.get(link.group(1))
        assert page.status == 200
        assert (await client.get("/notify/ack/" + "x" * 32)).status == 404
        detail = await (await client.get(f"/api/notify/alerts/{alerts[0]['id']}",
                                         headers=analyst)).json()
        acked = {d["address"] for d in detail["deliveries"] if d["acknowledged"]}
        assert acked == {"office@lincoln.example"}
        assert detail["counts"]["acknowledged"] == 1

        # The same incident told again warns nobody twice.
        again = eido(7, minute=1, lat=INCIDENT[0], lon=INCIDENT[1])
        assert (await client.post("/api/cad/eido", json=again, headers=cad)).status == 200
        # The CAD closes it: the all clear, referencing the alert.
        closed = eido(7, minute=2, status="CLSD", lat=INCIDENT[0], lon=INCIDENT[1])
        assert (await client.post("/api/cad/eido", json=closed, headers=cad)).status == 200
        await until(lambda: len(sink.received()) == 6, what="the all clear mails")
        await until(lambda: len(hooks.received) == 2, what="the all clear webhook")
        original = cap_of(sink.received()[0].cap)
        for received in sink.received()[3:]:
            root = cap_of(received.cap)
            assert text(root, "cap:msgType") == "Cancel"
            assert text(root, "cap:info/cap:responseType") == "AllClear"
            assert text(root, "cap:references") == ",".join(
                (text(original, "cap:sender"), text(original, "cap:identifier"),
                 text(original, "cap:sent")))
        assert len({m.key for m in sink.received()}) == 6
    await hooks.stop()


async def test_a_confirm_rule_waits_for_the_analyst(
        tmp_path: Path, bootstrap_token: str, make_client: MakeClient) -> None:
    with SmtpServer() as sink:
        client = await make_client(create_app(settings(tmp_path, _port(sink),
                                                       mode="confirm")))
        admin = bearer(bootstrap_token)
        _, cad = await role_headers(client, admin, Role.INTEGRATION)
        _, analyst = await role_headers(client, admin, Role.ANALYST)
        await add(client, admin, "lincoln-school", "school", north(100),
                  mail("office@lincoln.example"))
        document = eido(8, code="OTHER", lat=INCIDENT[0], lon=INCIDENT[1])
        document["incidentComponent"][0]["incidentTypeInternalText"] = "Active shooter"
        assert (await client.post("/api/cad/eido", json=document, headers=cad)).status == 200
        alerts = (await (await client.get("/api/notify/alerts", headers=analyst)).json())
        (proposed,) = alerts["alerts"]
        assert proposed["state"] == "proposed"
        assert sink.received() == []
        confirmed = await client.post(f"/api/notify/alerts/{proposed['id']}/confirm",
                                      headers=analyst)
        assert confirmed.status == 200, await confirmed.text()
        await until(lambda: len(sink.received()) == 1, what="the confirmed alert")
        cap_of(sink.received()[0].cap)
        again = await client.post(f"/api/notify/alerts/{proposed['id']}/confirm",
                                  headers=analyst)
        assert again.status == 409


async def test_manual_public_send_previews_recipients_and_feeds_the_atom_feed(
        tmp_path: Path, bootstrap_token: str, make_client: MakeClient) -> None:
    with SmtpServer() as sink:
        client = await make_client(create_app(settings(tmp_path, _port(sink))))
        admin = bearer(bootstrap_token)
        _, analyst = await role_headers(client, admin, Role.ANALYST)
        await add(client, admin, "lincoln-school", "school", north(100),
                  mail("office@lincoln.example"))
        await add(client, admin, "arena", "stadium", east(200), mail("ops@arena.example"))
        await add(client, admin, "far-school", "school", north(2000), mail("far@x.example"))
        square = [[north(-300)[0], east(-300)[1]], [north(300)[0], east(-300)[1]],
                  [north(300)[0], east(300)[1]], [north(-300)[0], east(300)[1]]]
        area = {"polygon": square, "categories": ["school", "stadium"]}
        preview = await (await client.post("/api/notify/preview", json=area,
                                           headers=analyst)).json()
        assert sorted(f["id"] for f in preview["facilities"]) == ["arena", "lincoln-school"]
        sent = await client.post("/api/notify/send", headers=analyst, json={
            **area, "scope": "Public", "headline": "Road closed near the arena",
            "description": "Avoid the area.", "response_type": "Avoid"})
        assert sent.status == 201, await sent.text()
        await until(lambda: len(sink.received()) == 2, what="the manual alert")
        root = cap_of(sink.received()[0].cap)
        assert text(root, "cap:scope") == "Public"
        assert root.find("cap:info/cap:area/cap:polygon", NS) is not None
        feed = await client.get("/public/alerts.atom")
        assert feed.status == 200
        atom = ET.fromstring(await feed.text())
        titles = [e.text for e in atom.iter("{http://www.w3.org/2005/Atom}title")]
        assert "Road closed near the arena" in titles
        link = next(e.get("href") for e in atom.iter("{http://www.w3.org/2005/Atom}link")
                    if e.get("type") == "application/cap+xml")
        assert link is not None
        document = await client.get(link.split("9", 1)[1] if link.startswith(
            "http://127.0.0.1:9") else link)
        cap_of(await document.text())
        # A private send never shows in the public feed.
        private = await client.post("/api/notify/send", headers=analyst, json={
            **area, "scope": "Private", "headline": "Lockdown drill"})
        assert private.status == 201
        assert "Lockdown drill" not in await (await client.get("/public/alerts.atom")).text()


def _port(sink: MailSink) -> int:
    return sink.port


async def test_owners_hear_when_an_incident_opens_and_closes_access_to_their_camera(
        tmp_path: Path, bootstrap_token: str, make_client: MakeClient) -> None:
    with SmtpServer() as sink:
        base = settings(tmp_path, sink.port)
        app = create_app(base.model_copy(update={"incidents": IncidentsConfig(
            emergency_policies={"SHOTS": EmergencyPolicy(unlock=True)})}))
        client = await make_client(app)
        admin = bearer(bootstrap_token)
        _, cad = await role_headers(client, admin, Role.INTEGRATION)
        await app[CATALOG_STORE].put_owner(Owner("shop1", "Corner Shop",
                                                 contact_email="owner@shop.example"))
        await app[CATALOG_STORE].create(Camera(
            id="near", name="near", lat=INCIDENT[0], lon=INCIDENT[1], owner_id="shop1",
            sharing=SharingLevel.LIVE_EMERGENCY, registered_by=Registrar.DEPARTMENT,
            profiles={"main": Profile(url="rtsp://127.0.0.1:9/closed")}))
        assert (await client.post("/api/cad/eido", json=eido(9, lat=INCIDENT[0],
                                                             lon=INCIDENT[1]),
                                  headers=cad)).status == 200
        await until(lambda: len(sink.to("owner@shop.example")) == 1, what="the owner's notice")
        (opened,) = sink.to("owner@shop.example")
        assert "Emergency access to your camera near" in str(opened.message["Subject"])
        assert "/notify/ack/" in opened.body
        closed = eido(9, minute=3, status="CLSD", lat=INCIDENT[0], lon=INCIDENT[1])
        assert (await client.post("/api/cad/eido", json=closed, headers=cad)).status == 200
        await until(lambda: len(sink.to("owner@shop.example")) == 2, what="the all clear")
        assert str(sink.to("owner@shop.example")[1].message["Subject"]).startswith("All clear")


async def test_webhooks_follow_the_url_rules_and_retry(
        tmp_path: Path, bootstrap_token: str, make_client: MakeClient) -> None:
    hooks = WebhookReceiver()
    await hooks.start()
    with SmtpServer() as sink:
        client = await make_client(create_app(settings(tmp_path, sink.port)))
        admin = bearer(bootstrap_token)
        _, analyst = await role_headers(client, admin, Role.ANALYST)
        port = hooks.url.rsplit(":", 1)[1]
        await add(client, admin, "school-a", "school", north(10),
                  {"channel": "webhook", "address": f"http://localhost:{port}/hook/a"},
                  {"channel": "webhook", "address": f"{hooks.url}/moved"},
                  {"channel": "webhook", "address": f"{hooks.url}/flaky"})
        sent = await client.post("/api/notify/send", headers=analyst, json={
            "circle": {"lat": INCIDENT[0], "lon": INCIDENT[1], "radius_m": 100},
            "categories": ["school"], "headline": "Shelter in place"})
        assert sent.status == 201
        alert_id = (await sent.json())["id"]

        async def deliveries() -> dict[str, dict[str, Any]]:
            detail = await (await client.get(f"/api/notify/alerts/{alert_id}",
                                             headers=analyst)).json()
            return {d["address"].rsplit("/", 1)[1]: d for d in detail["deliveries"]}

        done: dict[str, dict[str, Any]] = {}

        async def settled() -> bool:
            done.update(await deliveries())
            return all(d["state"] in {"failed", "delivered"} for d in done.values())

        for _ in range(400):
            if await settled():
                break
            await asyncio.sleep(0.05)
        assert done["a"]["state"] == "failed"
        assert "notify.webhook_hosts" in done["a"]["last_error"]
        assert done["moved"]["state"] == "failed"
        assert "redirects are not followed" in done["moved"]["last_error"]
        assert done["flaky"]["state"] == "delivered"
        assert done["flaky"]["attempts"] == 2
        assert [h.key for h in hooks.received] == [done["flaky"]["key"]]
    await hooks.stop()


async def test_an_incident_that_moves_warns_only_the_facilities_it_came_near(
        tmp_path: Path, bootstrap_token: str, make_client: MakeClient) -> None:
    with SmtpServer() as sink:
        client = await make_client(create_app(settings(tmp_path, sink.port)))
        admin = bearer(bootstrap_token)
        _, cad = await role_headers(client, admin, Role.INTEGRATION)
        await add(client, admin, "school-a", "school", north(100), mail("a@school.example"))
        await add(client, admin, "school-b", "school", north(1100), mail("b@school.example"))
        first = eido(11, lat=INCIDENT[0], lon=INCIDENT[1])
        assert (await client.post("/api/cad/eido", json=first, headers=cad)).status == 200
        await until(lambda: len(sink.received()) == 1, what="the first alert")
        there = north(700)
        moved = eido(11, minute=4, lat=round(there[0], 6), lon=INCIDENT[1])
        assert (await client.post("/api/cad/eido", json=moved, headers=cad)).status == 200
        await until(lambda: len(sink.received()) == 2, what="the alert to the school it neared")
        assert [m.to for m in sink.received()] == [("a@school.example",), ("b@school.example",)]
        cap_of(sink.received()[1].cap)
