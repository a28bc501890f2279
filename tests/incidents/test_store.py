"""The CAD incidents store on both engines: merge by update time, history of everything sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from incidents.model import CadTimes, CivicLocation, IncidentUpdate, PointLocation
from incidents.store import (
    INCIDENT_ID_PATTERN,
    IncidentStore,
    location_json,
    security_incident_id,
)
from rtcc.config import DatabaseConfig
from rtcc.db import Database

T0 = datetime(2026, 5, 4, 15, 0, tzinfo=UTC)
ID = "urn:emergency:uid:incidentid:77:cad.example"


def update(minutes: int, **kw: object) -> IncidentUpdate:
    return IncidentUpdate(tracking_id=ID, updated_at=T0 + timedelta(minutes=minutes), **kw)  # type: ignore[arg-type]


@pytest.fixture
async def store(database_url: str, tmp_path: Path) -> AsyncIterator[IncidentStore]:
    database = Database(DatabaseConfig(url=SecretStr(database_url), connect_timeout=3,
                                       migrate_on_start=True),
                        tmp_path)
    opened = await IncidentStore.open(database)
    yield opened
    await opened.aclose()
    await asyncio.to_thread(database.close)


async def test_out_of_order_and_duplicate_updates(store: IncidentStore) -> None:
    point = PointLocation(39.8, -89.65, 25.0, "circle")
    first = await store.upsert(update(5, status="DISPATCHED", location=point, priority=2,
                                      times=CadTimes(call_received=T0)),
                               location=location_json(point), raw='{"n": 1}', sender="cad-a")
    assert first.outcome == "created"
    assert first.changed
    assert first.incident.point() == (39.8, -89.65)
    assert INCIDENT_ID_PATTERN.fullmatch(first.incident.security_incident_id)
    assert first.incident.security_incident_id == security_incident_id(ID)

    older = await store.upsert(update(1, status="NEW"), location=None, raw='{"n": 0}',
                               sender="cad-a")
    assert older.outcome == "older"
    assert not older.changed
    assert older.incident.status == "DISPATCHED"

    again = await store.upsert(update(5, status="SOMETHING ELSE"), location=None,
                               raw='{"n": 1}', sender="cad-a")
    assert again.outcome == "duplicate"
    assert again.incident.status == "DISPATCHED"

    newer = await store.upsert(update(9, status="CLSD"), location=None, raw='{"n": 2}',
                               sender="cad-b")
    assert newer.outcome == "updated"
    incident = newer.incident
    assert incident.closed
    assert incident.status == "CLSD"
    assert incident.point() == (39.8, -89.65)  # a missing location is not "moved nowhere"
    assert incident.times["call_received"] == T0.isoformat()  # a reported time stays
    assert incident.priority is None  # a newer update replaces every other field

    history = await store.history(ID)
    assert [(h.outcome, h.raw, h.sender) for h in history] == [
        ("created", '{"n": 1}', "cad-a"), ("older", '{"n": 0}', "cad-a"),
        ("duplicate", '{"n": 1}', "cad-a"), ("updated", '{"n": 2}', "cad-b")]
    assert [i.tracking_id for i in await store.list_incidents(open_only=False)] == [ID]
    assert await store.list_incidents(open_only=True) == []
    assert (await store.by_security_id(incident.security_incident_id)) == incident


async def test_unknown_location_keeps_the_address(store: IncidentStore) -> None:
    civic = CivicLocation((("HNO", "9999"), ("RD", "Nowhere")), "9999 Nowhere Rd")
    result = await store.upsert(
        update(1, location=civic), raw="{}", sender="cad",
        location={"kind": "unknown", "address": civic.text, "reason": "no address point"})
    assert result.incident.point() is None
    assert result.incident.location == {"kind": "unknown", "address": "9999 Nowhere Rd",
                                        "reason": "no address point"}
    reread = await store.get(ID)
    assert reread is not None
    assert reread.update.location == civic


async def test_concurrent_updates_of_one_incident_keep_the_newest(store: IncidentStore) -> None:
    updates = [update(m, status=f"S{m}") for m in range(20)]
    await asyncio.gather(*(store.upsert(u, location=None, raw="{}", sender="cad")
                           for u in reversed(updates)))
    final = await store.get(ID)
    assert final is not None
    assert final.status == "S19"
    outcomes = [h.outcome for h in await store.history(ID)]
    assert outcomes.count("created") == 1
    assert len(outcomes) == 20


async def test_a_board_stream_that_falls_behind_is_ended_not_grown(store: IncidentStore) -> None:
    from incidents.service import QUEUE_SIZE, IncidentService
    from rtcc.config import IncidentsConfig

    service = IncidentService(store, IncidentsConfig())
    slow = service.subscribe()
    result = await store.upsert(update(1), location=None, raw="{}", sender="cad")
    for _ in range(QUEUE_SIZE + 50):
        await service.notify(result.incident)
    assert slow.queue.qsize() == QUEUE_SIZE
    items = [slow.queue.get_nowait() for _ in range(QUEUE_SIZE)]
    assert items[-1] is None  # the end: the console reconnects and reloads the list
    assert slow.overflowed
    fresh = service.subscribe()
    await service.notify(result.incident)
    assert fresh.queue.qsize() == 1
