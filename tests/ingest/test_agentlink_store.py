"""The agent store on SQLite and on PostgreSQL: enrollments are claimed once, agents and their
reported cameras read back, revoked agents' cameras leave the list."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from ingest.agentlink.store import AgentStore
from rtcc.agent_protocol import CameraReport
from rtcc.config import DatabaseConfig
from rtcc.db import Database


@pytest.fixture
async def store(database_url: str, tmp_path: Path) -> AsyncIterator[AgentStore]:
    database = Database(DatabaseConfig(url=SecretStr(database_url), connect_timeout=5,
                                       migrate_on_start=True), tmp_path)
    opened = await AgentStore.open(database)
    try:
        yield opened
    finally:
        await opened.aclose()
        database.close()


def _report(key: str, name: str) -> CameraReport:
    return CameraReport(key=key, name=name, source="rtsp", manufacturer="", model="",
                        firmware="", profiles=(), ptz=False, snapshot=True, status="ok",
                        error="")


async def test_an_enrollment_makes_one_agent_with_its_cameras(store: AgentStore) -> None:
    enrollment, token = await store.create_enrollment("owner-1", "olga", 100.0, 600.0)
    found = await store.enrollment_by_token(token)
    assert found is not None
    assert (found.id, found.owner_id, found.expires) == (enrollment.id, "owner-1", 700.0)
    assert await store.enrollment_by_token(token + "x") is None
    assert await store.claim_enrollment(enrollment.id, 110.0)
    assert not await store.claim_enrollment(enrollment.id, 111.0)
    agent_id = await store.new_agent_id()
    agent = await store.add_agent(agent_id, "owner-1", 2**40, 5, "shop", enrollment.id, 112.0)
    assert (agent.user_id, agent.token_id, agent.name) == (2**40, 5, "shop")
    assert (await store.agent_of_user(2**40)) == agent
    await store.seen(agent_id, 120.0, hostname="till", version=None)
    seen = await store.agent(agent_id)
    assert seen is not None
    assert (seen.last_seen, seen.hostname, seen.version) == (120.0, "till", "")

    saved = await store.save_cameras(agent, [_report("k1", "door"), _report("k2", "yard")],
                                     130.0)
    await store.save_cameras(agent, [_report("k1", "front door")], 140.0)
    cameras = await store.cameras(agent_id)
    assert sorted(c.camera_id for c in cameras) == sorted(c.camera_id for c in saved)
    assert {(c.report.name, c.report.snapshot) for c in cameras} == {("front door", True),
                                                                 ("yard", True)}
    one = await store.camera(saved[0].camera_id)
    assert one is not None
    assert (one.report.name, one.updated) == ("front door", 140.0)
    assert len(await store.cameras()) == 2

    assert await store.revoke(agent_id, "olga", 150.0)
    assert not await store.revoke(agent_id, "olga", 151.0)
    assert await store.cameras() == []
    assert [a.id for a in await store.agents("owner-1")] == [agent_id]
    assert await store.agents("owner-2") == []
