"""The notifications store on both engines: facilities, alerts queued with their deliveries in
one transaction, idempotency keys, claims with leases, retries, acknowledgements."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from notify.store import Contact, Facility, NewDelivery, NotifyStore
from rtcc.config import DatabaseConfig
from rtcc.db import Database
from tests.fixtures.auth import FakeClock


@pytest.fixture
async def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
async def store(database_url: str, tmp_path: Path, clock: FakeClock
                ) -> AsyncIterator[NotifyStore]:
    database = Database(DatabaseConfig(url=SecretStr(database_url), connect_timeout=3,
                                       migrate_on_start=True), tmp_path)
    opened = await NotifyStore.open(database, clock)
    yield opened
    await opened.aclose()
    await asyncio.to_thread(database.close)


def delivery(key: str, token: str) -> NewDelivery:
    return NewDelivery(key=key, kind="cap", channel="email", address=f"{key}@x.example",
                       subject="s", body="b", ack_token=token, facility_id="school")


async def test_outbox_lifecycle(store: NotifyStore, clock: FakeClock) -> None:
    facility = await store.put_facility(Facility(
        "school", "School", "school", 39.8, -89.6, ((39.8, -89.6), (39.81, -89.6),
                                                     (39.81, -89.59)),
        contacts=(Contact(0, "school", "office", "email", "o@x.example"),)))
    assert facility.contacts[0].address == "o@x.example"
    assert len(facility.polygon) == 3
    alert = {"identifier": "rtcc-1", "msg_type": "Alert", "scope": "Private", "state": "sent",
             "facilities": ["school"], "plan": {"info": {}}, "created_by": "cad",
             "incident": "inc-1"}
    stored, created = await store.add_alert(alert, [delivery("a", "t" * 32),
                                                    delivery("b", "u" * 32)])
    assert created
    again, created = await store.add_alert(alert, [delivery("c", "v" * 32)])
    assert not created
    assert again.id == stored.id
    assert [d.key for d in await store.deliveries()] == ["a", "b"]
    assert await store.queue([delivery("a", "w" * 32)]) == 0  # the key is taken

    first = await store.claim(1, lease=10)
    assert [(d.key, d.state, d.attempts) for d in first] == [("a", "sending", 1)]
    second = await store.claim(5, lease=10)
    assert [d.key for d in second] == ["b"]  # "a" is leased
    assert await store.claim(5, lease=10) == []
    await store.finish(second[0].id, "queued", "relay down", retry_at=clock() + 5)
    clock.advance(11)  # the lease of "a" passed (its sender was killed): due again
    due = sorted(await store.claim(5, lease=10), key=lambda d: d.key)
    assert [(d.key, d.attempts) for d in due] == [("a", 2), ("b", 2)]
    await store.finish(due[0].id, "sent")
    await store.finish(due[1].id, "failed", "mailbox unknown")
    states = {d.key: (d.state, d.last_error) for d in await store.deliveries()}
    assert states == {"a": ("sent", ""), "b": ("failed", "mailbox unknown")}
    assert await store.next_due() is None

    acked = await store.acknowledge("t" * 32)
    assert acked is not None
    assert acked.key == "a"
    assert acked.acked_at == clock()
    assert await store.acknowledge("z" * 32) is None
    resent = await store.resend(due[1].id)
    assert resent is not None
    assert resent.state == "queued"
    assert [a.identifier for a in await store.alerts(incident="inc-1")] == ["rtcc-1"]
    assert await store.alerts(scope="Public") == []
    assert await store.delete_facility("school")
    assert await store.facilities() == []
