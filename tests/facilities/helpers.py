"""A school with a floor plan, an enrolled panic device and staff, on the real application."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient
from PIL import Image

from catalog.keys import CATALOG_STORE
from catalog.model import Site
from rtcc.policy import Role
from tests.fixtures.auth import role_headers

SCHOOL_SITE = "lincoln-site"
SCHOOL_AT = (39.8, -89.645)


def plan_png(width: int = 400, height: int = 300) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (240, 240, 240)).save(out, format="PNG")
    return out.getvalue()


@dataclass
class School:
    facility: dict[str, Any]
    floor: dict[str, Any]
    room: dict[str, Any]
    device_token: str
    device_id: str
    owner: dict[str, str]
    analyst: dict[str, str]

    def device(self) -> dict[str, str]:
        return {"X-Device-Token": self.device_token}


async def make_school(client: TestClient[Any, Any], admin: dict[str, str],
                      owner_id: str = "shop1") -> School:
    lat, lon = SCHOOL_AT
    d = 0.0005
    await client.app[CATALOG_STORE].put_site(Site(
        id=SCHOOL_SITE, owner_id=owner_id, address="1 School Rd",
        outline=((lon - d, lat - d), (lon + d, lat - d), (lon + d, lat + d), (lon - d, lat + d)),
        soft_target=True))
    _, owner = await role_headers(client, admin, Role.OWNER, owner_id=owner_id)
    _, analyst = await role_headers(client, admin, Role.ANALYST)
    created = await client.post("/api/facilities", headers=owner, json={
        "site_id": SCHOOL_SITE, "name": "Lincoln Elementary", "kind": "school",
        "sharing": "alert"})
    facility = await created.json()
    assert created.status == 201, facility
    fid = facility["id"]
    patched = await client.patch(f"/api/facilities/{fid}", headers=owner, json={
        "contacts": [{"name": "Principal Ruiz", "phone": "555-0100", "role": "key holder"}],
        "sops": ["Lockdown: lock doors, lights off, away from windows"],
        "entrances": [{"door": "1", "text": "Main entrance, Lincoln Ave"}],
        "staging_areas": ["Church parking lot, 200 m north"],
        "hazards": ["Chemistry storage, room 112"], "review": True})
    assert patched.status == 200, await patched.text()
    floor = await (await client.post(f"/api/facilities/{fid}/floors", headers=owner,
                                     json={"building": "Main", "name": "Ground floor",
                                           "level": 0})).json()
    plan = await client.put(f"/api/facilities/{fid}/floors/{floor['id']}/plan",
                            data=plan_png(), headers={**owner, "Content-Type": "image/png"})
    assert plan.status == 200, await plan.text()
    room = await (await client.post(f"/api/facilities/{fid}/rooms", headers=owner, json={
        "floor_id": floor["id"], "name": "Library", "number": "104", "x": 0.25,
        "y": 0.5})).json()
    enrolment = await client.post(f"/api/facilities/{fid}/enrolments", headers=owner,
                                  json={"label": "Front office phone", "room_id": room["id"]})
    code = await enrolment.json()
    assert enrolment.status == 201, code
    assert code["qr_svg"].startswith("<svg")
    enrolled = await client.post("/panic/api/enrol", json={"secret": code["secret"]})
    device = await enrolled.json()
    assert enrolled.status == 201, device
    return School(facility, floor, room, device["device_token"], device["device_id"], owner,
                  analyst)
