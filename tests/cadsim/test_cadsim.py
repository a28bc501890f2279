"""The CAD simulator: its STA-024 notifier (driven by a raw WebSocket client), its scenario and
its EIDO poster, each against the real ``python -m cadsim`` subprocess."""

from __future__ import annotations

import asyncio
import sys
import xml.etree.ElementTree as ET
from typing import Any

import aiohttp
from aiohttp import web

from cadsim.scenario import PLACES, Scenario
from tests.fixtures.cadsim import CadsimFactory, wait_for

SUBPROTOCOL = "emergency-ent1.0"
TOKEN = "cadsim-token-canary-5d1e"
GML = "{http://www.opengis.net/gml}"


async def _next(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    async with asyncio.timeout(10):
        message = await ws.receive_json()
    assert list(message) == [kind], message
    body: dict[str, Any] = message[kind]
    return body


async def test_subscribe_event_response_unsubscribe(cadsim_factory: CadsimFactory) -> None:
    sim = await cadsim_factory()
    eido = Scenario(seed=3).next_eido()
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(sim.ws_url, protocols=(SUBPROTOCOL,)) as ws:
        assert ws.protocol == SUBPROTOCOL
        await ws.send_json({"subscribe": {"requestId": "r1", "requestType": "EIDO",
                                          "expires": 120}})
        reply = await _next(ws, "subscribeResponse")
        assert (reply["requestId"], reply["statusCode"], reply["expires"]) == ("r1", 200, 120)
        sub_id = reply["subscriptionId"]

        await sim.inject(eido)
        event = await _next(ws, "event")
        assert event["subscriptionId"] == sub_id
        assert event["notification"] == [eido]
        await ws.send_json({"eventResponse": {"transactionId": event["transactionId"],
                                              "statusCode": 200, "statusText": "OK"}})

        async def acknowledged() -> bool:
            return bool((await sim.stats())["responses"] == {"200": 1})

        await wait_for(acknowledged, "the notifier to count the eventResponse")

        await ws.send_json({"subscribe": {"requestId": "r2", "subscriptionId": "nope",
                                          "expires": 60}})
        assert (await _next(ws, "subscribeResponse"))["statusCode"] == 481
        await ws.send_json({"subscribe": {"requestId": "r3", "expires": 60}})
        refused = await _next(ws, "subscribeResponse")
        assert (refused["statusCode"], refused["statusText"]) == (400, "requestType must be EIDO")
        await ws.send_json({"resourceDiscovery": {"requestId": "r4"}})
        assert (await _next(ws, "response"))["statusCode"] == 501

        await ws.send_json({"unsubscribe": {"requestId": "r5", "subscriptionId": sub_id}})
        done = await _next(ws, "unsubscribeResponse")
        assert (done["subscriptionId"], done["statusCode"]) == (sub_id, 200)
        assert (await sim.inject(eido))["sent"] == 0


async def test_a_subscription_not_renewed_gets_no_more_events(
        cadsim_factory: CadsimFactory) -> None:
    sim = await cadsim_factory()
    first = Scenario(seed=4).next_eido()
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(sim.ws_url, protocols=(SUBPROTOCOL,)) as ws:
        await ws.send_json({"subscribe": {"requestId": "r1", "requestType": "EIDO",
                                          "expires": 1}})
        assert (await _next(ws, "subscribeResponse"))["expires"] == 1
        assert (await sim.inject(first))["sent"] == 1
        assert (await _next(ws, "event"))["notification"] == [first]

        async def expired() -> bool:
            return bool((await sim.stats())["expired"] == 1)

        await wait_for(expired, "the 1 s subscription to expire")
        assert (await sim.inject(first))["sent"] == 0
        # a new subscription starts with the current state of the open incidents
        await ws.send_json({"subscribe": {"requestId": "r2", "requestType": "EIDO",
                                          "expires": 60}})
        assert (await _next(ws, "subscribeResponse"))["statusCode"] == 200
        assert (await _next(ws, "event"))["notification"] == [first]


async def test_control_api_refuses_what_is_not_an_eido(cadsim_factory: CadsimFactory) -> None:
    sim = await cadsim_factory()
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{sim.control_url}/eido", json={"no": "id"}) as response:
            assert response.status == 400
            assert "incidentTrackingIdentifier" in await response.text()
        async with session.post(f"{sim.control_url}/eido", json=[1, 2]) as response:
            assert response.status == 400


def test_the_scenario_is_deterministic_and_covers_every_shape_and_step() -> None:
    def stable(eido: dict[str, Any]) -> tuple[object, ...]:
        incident = eido["incidentComponent"][0]
        return (eido["incidentTrackingIdentifier"], incident["incidentTypeInternalCode"],
                incident["incidentStatusInternalText"], incident["incidentCommonPriorityNumber"],
                eido["locationComponent"][0]["locationDescriptionText"])

    first = [Scenario(seed=5).next_eido() for _ in range(1)]
    one, two = Scenario(seed=5), Scenario(seed=5)
    run_a = [one.next_eido() for _ in range(60)]
    run_b = [two.next_eido() for _ in range(60)]
    assert [stable(e) for e in run_a] == [stable(e) for e in run_b]
    assert stable(first[0]) == stable(run_a[0])

    statuses = {e["incidentComponent"][0]["incidentStatusInternalText"][0] for e in run_a}
    assert statuses == {"PEND", "DISP", "ENRT", "ONSC", "CLSD"}
    stamps: dict[str, str] = {}
    shapes: set[str] = set()
    for eido in run_a:
        tid = eido["incidentTrackingIdentifier"]
        assert tid.startswith("urn:emergency:uid:incidentid:")
        assert eido["lastUpdateTimeStamp"] > stamps.get(tid, "")  # updates only move forward
        stamps[tid] = eido["lastUpdateTimeStamp"]
        root = ET.fromstring(eido["locationComponent"][0]["locationByValue"])
        info = root.find(".//{urn:ietf:params:xml:ns:pidf:geopriv10}location-info")
        assert info is not None
        shape = info[0]
        shapes.add(shape.tag.rsplit("}", 1)[1])
        if shape.tag == f"{GML}Polygon":
            pos_list = shape.findtext(f".//{GML}posList")
            assert pos_list is not None
            numbers = [float(n) for n in pos_list.split()]
            assert numbers[:2] == numbers[-2:]  # the ring is closed
        if shape.tag.endswith("civicAddress"):
            ns = "{urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr}"
            assert shape.findtext(f"{ns}A3") == "Springfield"
            road = shape.findtext(f"{ns}RD")
            assert road in {p.street for p in PLACES}
    assert shapes == {"Point", "Circle", "Polygon", "civicAddress"}


async def test_posts_every_eido_in_order_retrying_failures() -> None:
    received: list[dict[str, Any]] = []
    auth: set[str] = set()
    failures = 2

    async def cad_eido(request: web.Request) -> web.Response:
        nonlocal failures
        auth.add(request.headers.get("Authorization", ""))
        if failures:
            failures -= 1
            return web.Response(status=503, text="store busy")
        received.append(await request.json())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/api/cad/eido", cad_eido)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cadsim", "--port", "0", "--once", "--count", "4",
            "--rate", "50", "--seed", "12", "--post-to",
            f"http://127.0.0.1:{port}/api/cad/eido", "--token", TOKEN,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(60):
            out, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        assert out.decode().startswith("READY port=")
    finally:
        await runner.cleanup()
    assert auth == {f"Bearer {TOKEN}"}
    scenario = Scenario(seed=12)
    expected = [scenario.next_eido()["incidentTrackingIdentifier"] for _ in range(4)]
    assert [e["incidentTrackingIdentifier"] for e in received] == expected
    assert b"retrying in" in err


async def test_rtcc_cadsim_runs_the_simulator() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "--log-level", "warning", "cadsim", "--port", "0",
        "--once", "--count", "2", "--rate", "100",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert out.decode().startswith("READY port=")
    assert "/IncidentData/ent" in out.decode()
