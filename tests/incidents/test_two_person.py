"""Two-person rule: an analyst's manual incident unlocks emergency cameras only once a
supervisor approves it; with the rule off (the default) it unlocks them at once."""

from __future__ import annotations

from pathlib import Path

from rtcc.config import IncidentsConfig
from rtcc.policy import Role
from server.app import create_app
from tests.fixtures.auth import MakeClient, bearer, role_headers, security_settings


async def test_an_analysts_incident_waits_for_a_supervisor(
        tmp_path: Path, bootstrap_token: str, make_client: MakeClient) -> None:
    settings = security_settings(tmp_path).model_copy(
        update={"incidents": IncidentsConfig(two_person_rule=True)})
    client = await make_client(create_app(settings))
    admin = bearer(bootstrap_token)
    _, analyst = await role_headers(client, admin, Role.ANALYST)
    _, supervisor = await role_headers(client, admin, Role.SUPERVISOR)

    opened = await client.post("/api/incidents", headers=analyst,
                               json={"id": "M-1", "title": "fight", "cameras": ["school"]})
    assert opened.status == 201
    assert (await opened.json())["approval"] == "pending"

    async def granted() -> list[str]:
        body = await (await client.get("/api/incidents/M-1/grants", headers=supervisor)).json()
        return [g["camera_id"] for g in body["grants"] if g["state"] == "active"]

    assert await granted() == []
    assert (await client.post("/api/incidents/M-1/approve", headers=analyst,
                              json={})).status == 403
    approved = await client.post("/api/incidents/M-1/approve", headers=supervisor,
                                 json={"reason": "confirmed by patrol"})
    assert approved.status == 200, await approved.text()
    assert (await approved.json())["approval"]["reason"] == "confirmed by patrol"
    assert await granted() == ["school"]
    # Once approved, cameras the analyst links later unlock at once.
    linked = await client.post("/api/incidents/M-1/cameras", headers=analyst,
                               json={"cameras": ["church"]})
    assert linked.status == 200
    assert sorted(await granted()) == ["church", "school"]
    again = await client.post("/api/incidents/M-1/approve", headers=supervisor, json={})
    assert again.status == 409

    # A supervisor's own incident and panic alerts are not held back.
    own = await client.post("/api/incidents", headers=supervisor,
                            json={"id": "M-2", "cameras": ["school"]})
    assert (await own.json())["approval"] == "not needed"
    panic = await client.post("/api/incidents", headers=analyst,
                              json={"id": "P-1", "kind": "panic", "cameras": ["school"]})
    assert (await panic.json())["approval"] == "not needed"
