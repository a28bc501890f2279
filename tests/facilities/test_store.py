"""The facilities store on both engines: profiles, floors with plans, rooms, one-time
enrolments, alerts stored with their first step (retries of one press are one alert, floods
refused), timelines in order, and the CAD outbox (one delivery per key, leased claims,
retries, given-up deliveries)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from facilities.forward import CadForwarder
from facilities.records import FacilityError
from facilities.store import FacilityStore
from rtcc.config import CadEndpoint, DatabaseConfig, FacilitiesConfig
from rtcc.db import Database
from tests.fixtures.auth import FakeClock


@pytest.fixture
async def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
async def store(database_url: str, tmp_path: Path, clock: FakeClock
                ) -> AsyncIterator[FacilityStore]:
    database = Database(DatabaseConfig(url=SecretStr(database_url), connect_timeout=3,
                                       migrate_on_start=True), tmp_path)
    opened = FacilityStore(database, clock)
    await opened.open()
    yield opened
    await opened.aclose()
    await asyncio.to_thread(database.close)


def _values(room_id: str = "") -> dict[str, Any]:
    return {"level": "lockdown", "drill": False, "silent": True, "room_id": room_id,
            "lat": 39.8, "lon": -89.6, "accuracy_m": 12.5}


async def test_profiles_floors_rooms_and_devices(store: FacilityStore, clock: FakeClock
                                                 ) -> None:
    s = store
    school = await s.run(s.create_facility, "shop1", "site-1", "Lincoln", "school",
                         "1 School Rd", 39.8, -89.6, "alert")
    await s.run(s.create_facility, "shop2", "site-2", "Other", "venue", "2 Rd", None, None,
                "always")
    assert [f.name for f in await s.run(s.facilities, "shop1")] == ["Lincoln"]
    assert [f.name for f in await s.run(s.facilities)] == ["Lincoln", "Other"]
    clock.advance(100)
    updated = await s.run(s.update_facility, school.id, {"name": "Lincoln Elementary"},
                          {"contacts": [{"name": "Ruiz"}], "sops": [], "hazards": [],
                           "entrances": [], "staging_areas": [], "buildings": []}, True)
    assert updated.name == "Lincoln Elementary"
    assert updated.reviewed_at == clock()
    assert updated.profile["contacts"] == [{"name": "Ruiz"}]

    upper = await s.run(s.add_floor, school.id, "Main", "First floor", 1)
    ground = await s.run(s.add_floor, school.id, "Main", "Ground floor", 0)
    await s.run(s.set_plan, ground.id, b"\x89PNG-bytes", 40, 30)
    floors = await s.run(s.floors, school.id)
    assert [(f.id, f.has_plan) for f in floors] == [(ground.id, True), (upper.id, False)]
    assert await s.run(s.plan, ground.id) == b"\x89PNG-bytes"
    room = await s.run(s.add_room, school.id, ground.id, "Library", "104", 0.25, 0.5)
    assert await s.run(s.room_facility, room.id) == school.id
    assert [r.number for r in await s.run(s.rooms, school.id)] == ["104"]

    secret = await s.run(s.add_enrolment, school.id, "Office phone", room.id, 60.0)
    device, token = await s.run(s.enrol, secret)
    assert (await s.run(s.device_by_token, token)) == device
    with pytest.raises(FacilityError, match="already used"):
        await s.run(s.enrol, secret)
    late = await s.run(s.add_enrolment, school.id, "Late phone", "", 60.0)
    clock.advance(61)
    with pytest.raises(FacilityError, match="expired"):
        await s.run(s.enrol, late)
    assert await s.run(s.revoke_device, device.id, "owner")
    assert not await s.run(s.revoke_device, device.id, "owner")
    (revoked,) = await s.run(s.devices, school.id)
    assert revoked.revoked_at == clock()


async def test_alerts_timelines_and_the_cad_outbox(store: FacilityStore, clock: FakeClock
                                                   ) -> None:
    s = store
    school = await s.run(s.create_facility, "shop1", "site-1", "Lincoln", "school",
                         "1 School Rd", 39.8, -89.6, "alert")
    secret = await s.run(s.add_enrolment, school.id, "Office phone", "", 60.0)
    device, _ = await s.run(s.enrol, secret)

    alert, created = await s.run(s.raise_alert, device, "press-0001", _values(), (2, 600.0),
                                 "device")
    assert created
    again, created = await s.run(s.raise_alert, device, "press-0001", _values(), (2, 600.0),
                                 "device")
    assert (again.id, created) == (alert.id, False)
    second, _ = await s.run(s.raise_alert, device, "press-0002", _values(), (2, 600.0),
                            "device")
    with pytest.raises(FacilityError, match="911"):
        await s.run(s.raise_alert, device, "press-0003", _values(), (2, 600.0), "device")
    assert await s.run(s.active_at, school.id)
    clock.advance(1)
    await s.run(s.step, alert.id, "acknowledged", "analyst", {}, "acknowledged")
    clock.advance(1)
    await s.run(s.note, alert.id, "incident.opened", "panic", {"cameras": ["hall"]})
    done = await s.run(s.step, alert.id, "all_clear", "analyst", {}, "resolved")
    assert not done.active
    with pytest.raises(FacilityError, match="takes no"):
        await s.run(s.step, alert.id, "dispatched", "analyst", {}, "dispatched")
    steps = [e.step for e in await s.run(s.events, alert.id)]
    assert steps == ["triggered", "acknowledged", "incident.opened", "all_clear"]
    assert [a.id for a in await s.run(lambda: s.alerts(active_only=True))] == [second.id]

    assert await s.run(s.enqueue, alert.id, ["county", "state"], "alert", "{}") == 2
    assert await s.run(s.enqueue, alert.id, ["county", "state"], "alert", "{}") == 0
    first = await s.run(s.claim, 10, 30.0)
    assert sorted(i.key for i in first) == [f"{alert.id}:county:alert",
                                            f"{alert.id}:state:alert"]
    assert await s.run(s.claim, 10, 30.0) == []  # leased
    county = next(i for i in first if i.endpoint == "county")
    state = next(i for i in first if i.endpoint == "state")
    await s.run(s.failed, county.id, "answered 503", 5.0)
    await s.run(s.failed, state.id, "answered 401", None)
    assert await s.run(s.next_due) == clock() + 5.0
    clock.advance(5)
    (retry,) = await s.run(s.claim, 10, 30.0)
    assert (retry.id, retry.attempts) == (county.id, 2)
    await s.run(s.delivered, retry.id)
    assert await s.run(s.next_due) is None
    shown = {o["endpoint"]: o for o in await s.run(s.outbox, alert.id)}
    assert shown["county"]["delivered_at"] == clock()
    assert shown["county"]["attempts"] == 2
    assert shown["state"]["failed_at"] is not None
    assert "401" in shown["state"]["last_error"]


async def test_a_closing_update_left_out_by_a_stop_is_enqueued_at_the_next_start(
        store: FacilityStore) -> None:
    s = store
    school = await s.run(s.create_facility, "shop1", "site-1", "Lincoln", "school",
                         "1 School Rd", 39.8, -89.6, "alert")
    device, _ = await s.run(s.enrol, await s.run(s.add_enrolment, school.id, "Phone", "", 60.0))
    alert, _ = await s.run(s.raise_alert, device, "press-0001", _values(), (5, 600.0), "device")
    forwarder = CadForwarder(s, FacilitiesConfig(cad_endpoints=[
        CadEndpoint(name="county", url="https://cad.county.example/eido")]))
    await forwarder.on_step(alert, school, "triggered", "device")
    await s.run(s.step, alert.id, "all_clear", "analyst", {}, "resolved")  # no hooks: a stop
    assert await s.run(s.missing_updates) == [(alert.id, "county")]
    assert await forwarder.catch_up() == 1
    assert await forwarder.catch_up() == 0
    keys = [o["key"] for o in await s.run(s.outbox, alert.id)]
    assert keys == [f"{alert.id}:county:alert", f"{alert.id}:county:update"]
