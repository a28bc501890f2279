"""Alerts forwarded to 911/CAD as EIDO documents from the persistent outbox: to a receiver
that fails twice before it takes the alert, and to the real CAD simulator. Each alert reaches
each endpoint once under one idempotency key (the retries carry the same key), a replay of the
alert sends nothing more, the all clear sends the closing update, a drill sends nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from cadsim.notifier import Notifier
from cadsim.notifier import create_app as cadsim_app
from cadsim.scenario import is_closed
from facilities.forward import SendFailed, post_eido
from incidents.eido import parse_eido
from rtcc.config import CadEndpoint, FacilitiesConfig
from server.app import create_app
from tests.facilities.helpers import make_school
from tests.fixtures.auth import MakeClient, bearer, security_settings

TOKEN = "cad-bearer-canary-83f2"


class Receiver:
    """A CAD endpoint that answers 503 to its first ``failures`` posts."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.posts: list[tuple[str, str, dict[str, Any]]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.posts.append((request.headers.get("Idempotency-Key", ""),
                           request.headers.get("Authorization", ""), await request.json()))
        if len(self.posts) <= self.failures:
            return web.json_response({"error": "busy"}, status=503)
        return web.json_response({"ok": True})


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def peers() -> AsyncIterator[tuple[Receiver, str, Notifier, str]]:
    receiver = Receiver(failures=2)
    app = web.Application()
    app.router.add_post("/eido", receiver.handle)
    runner, url = await _serve(app)
    notifier = Notifier()
    cad_runner, cad_url = await _serve(cadsim_app(notifier))
    try:
        yield receiver, f"{url}/eido", notifier, f"{cad_url}/control/eido"
    finally:
        await runner.cleanup()
        await cad_runner.cleanup()


async def _until(what: str, check: Any) -> None:
    async with asyncio.timeout(30):
        while not check():
            await asyncio.sleep(0.05)
    assert check(), what


async def test_alerts_reach_each_cad_once_and_the_all_clear_updates_them(
        tmp_path: Path, make_client: MakeClient, bootstrap_token: str,
        peers: tuple[Receiver, str, Notifier, str]) -> None:
    receiver, receiver_url, cadsim, cadsim_url = peers
    settings = security_settings(tmp_path, allow_private_camera_hosts=["127.0.0.0/8"])
    client: TestClient[Any, Any] = await make_client(create_app(settings.model_copy(update={
        "facilities": FacilitiesConfig(retry_seconds=0.1, cad_endpoints=[
            CadEndpoint(name="county", url=receiver_url, token=TOKEN),  # type: ignore[arg-type]
            CadEndpoint(name="cadsim", url=cadsim_url)])})))
    school = await make_school(client, bearer(bootstrap_token))

    drill = await client.post("/panic/api/alerts", headers=school.device(), json={
        "id": "drill-0001-aaaa", "level": "lockdown", "drill": True})
    assert drill.status == 201
    raised = await client.post("/panic/api/alerts", headers=school.device(), json={
        "id": "real-0001-aaaa", "level": "active_threat"})
    assert raised.status == 201
    alert_id = (await raised.json())["alert"]["id"]
    await _until("the county CAD took the alert at the third try", lambda: len(receiver.posts) >= 3)
    await _until("the simulator published it", lambda: cadsim.published >= 1)
    replay = await client.post("/panic/api/alerts", headers=school.device(), json={
        "id": "real-0001-aaaa", "level": "active_threat"})
    assert replay.status == 200

    keys = {key for key, _, _ in receiver.posts}
    assert keys == {f"{alert_id}:county:alert"}  # the retries carry the same key
    assert all(auth == f"Bearer {TOKEN}" for _, auth, _ in receiver.posts)
    (update,) = parse_eido(json.dumps(receiver.posts[-1][2]))
    assert update.type_code == "PANIC-ACTIVE_THREAT"
    assert "Lincoln Elementary" in (update.type_text or "")
    assert update.location is not None
    (tracking,) = cadsim.incidents
    assert alert_id in str(tracking)
    assert not is_closed(cadsim.incidents[tracking])

    shown = await (await client.get(f"/api/panic/alerts/{alert_id}",
                                    headers=school.analyst)).json()
    county = next(o for o in shown["outbox"] if o["endpoint"] == "county")
    assert county["attempts"] == 3
    assert county["delivered_at"] is not None
    assert "503" not in county["last_error"]

    cleared = await client.post(f"/api/panic/alerts/{alert_id}/all_clear",
                                headers=school.analyst, json={})
    assert cleared.status == 200
    await _until("the county CAD took the all clear", lambda: len(receiver.posts) >= 4)
    await _until("the simulator closed the incident",
                 lambda: is_closed(cadsim.incidents[tracking]))
    await asyncio.sleep(0.5)  # nothing else may follow: counted, not timed
    assert [key for key, _, _ in receiver.posts] == [f"{alert_id}:county:alert"] * 3 + [
        f"{alert_id}:county:update"]
    assert cadsim.published == 2
    assert all("drill" not in json.dumps(body).lower() for _, _, body in receiver.posts)


async def test_cad_endpoints_are_held_to_the_url_rules() -> None:
    """A loopback endpoint without the allowlist is refused before any connection; a redirect
    is not followed; both are final (no retry can help)."""
    hits: list[str] = []

    async def moved(request: web.Request) -> web.Response:
        hits.append(request.path)
        raise web.HTTPFound("http://127.0.0.1:9/elsewhere")

    app = web.Application()
    app.router.add_post("/eido", moved)
    runner, url = await _serve(app)
    try:
        endpoint = CadEndpoint(name="county", url=f"{url}/eido")
        with pytest.raises(SendFailed, match="county refused") as refused:
            await post_eido(endpoint, "k1", "{}", 5.0, ())
        assert refused.value.permanent
        assert hits == []
        with pytest.raises(SendFailed, match="redirects are not followed") as redirected:
            await post_eido(endpoint, "k2", "{}", 5.0, ("127.0.0.0/8",))
        assert redirected.value.permanent
        assert hits == ["/eido"]
    finally:
        await runner.cleanup()
