"""The server's configured STA-024 subscription, against the CAD simulator as a subprocess: an
EIDO the CAD publishes ends as an incident in the store, on the board, and the notifier gets its
``eventResponse`` 200 only after that; the subscription shows in ``/api/health``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rtcc.config import IncidentsConfig, Sta024Config
from rtcc.policy import Role
from server.app import create_app
from tests.fixtures.auth import MakeClient, bearer, role_headers, security_settings
from tests.fixtures.cadsim import CadsimFactory, wait_for
from tests.incidents.eidos import eido, tracking_id


async def test_sta024_events_become_stored_incidents(
        tmp_path: Path, bootstrap_token: str, make_client: MakeClient,
        cadsim_factory: CadsimFactory) -> None:
    sim = await cadsim_factory()
    settings = security_settings(tmp_path).model_copy(update={"incidents": IncidentsConfig(
        sta024=Sta024Config(url=sim.ws_url, expires=60))})
    client = await make_client(create_app(settings))
    _, analyst = await role_headers(client, bearer(bootstrap_token), Role.ANALYST)

    async def subscribed() -> bool:
        health = await (await client.get("/api/health")).json()
        state = health.get("cad_sta024") or {}
        return bool(state.get("connected") and state.get("subscribed"))

    await wait_for(subscribed, "the server to subscribe to the CAD")
    await sim.inject([eido(11, minute=1), eido(12, minute=1, status="ENRT")])

    async def stored() -> dict[str, Any] | None:
        listing = await (await client.get("/api/cad/incidents", headers=analyst)).json()
        ids = {i["id"] for i in listing["incidents"]}
        return listing if {tracking_id(11), tracking_id(12)} <= ids else None

    async def stored_flag() -> bool:
        return await stored() is not None

    await wait_for(stored_flag, "both incidents in the store")
    detail = await (await client.get(f"/api/cad/incidents/{tracking_id(12)}",
                                     headers=analyst)).json()
    assert detail["status"] == "ENRT"
    assert detail["history"][0]["sender"] == "sta024"
    assert detail["location"]["kind"] == "point"

    async def acknowledged() -> bool:
        stats = await sim.stats()
        return int(stats.get("responses", {}).get("200", 0)) > 0

    await wait_for(acknowledged, "the notifier to receive eventResponse 200")
    stats = await sim.stats()
    assert not {k for k in stats.get("responses", {}) if k != "200"}, stats

    # The CAD closing one: it leaves the open list.
    await sim.inject(eido(11, minute=9, status="CLSD"))

    async def closed() -> bool:
        listing = await (await client.get("/api/cad/incidents", headers=analyst)).json()
        return [i["id"] for i in listing["incidents"]] == [tracking_id(12)]

    await wait_for(closed, "the closed incident to leave the board")
