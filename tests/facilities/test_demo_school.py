"""The demo's school: created once with its floor plan and rooms, a fresh enrolment code at
every start that enrols a device."""

from __future__ import annotations

import time
from pathlib import Path

from facilities.store import FacilityStore
from rtcc.config import Settings
from rtcc.db import Database
from server.demo_account import demo_school


async def test_the_demo_school_is_made_once_and_enrols_a_phone(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = await demo_school(settings)
    second = await demo_school(settings)
    assert first != second
    database = Database.from_settings(settings)
    store = FacilityStore(database, time.time)
    try:
        store._open_tables()  # noqa: SLF001 -- the test owns this thread
        (school,) = store.facilities("district-186")
        (floor,) = store.floors(school.id)
        assert floor.has_plan
        assert [r.number for r in store.rooms(school.id)] == ["101", "104", "110"]
        device, _ = store.enrol(second)
        assert device.facility_id == school.id
    finally:
        store._release()  # noqa: SLF001
        database.close()
