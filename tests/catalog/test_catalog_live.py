"""Live status: hub state changes reach the store and consoles' event streams (SSE)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse
from pydantic import SecretStr

from catalog import CATALOG_STORE, LIVE_FEED
from catalog.events import Broadcaster
from catalog.model import CameraStatus
from catalog.postgis_store import PostgisCatalog
from rtcc.access import SecretBox
from rtcc.config import DatabaseConfig
from rtcc.db import Database
from rtcc.hub import Source, StreamHub, StreamSettings
from rtcc.media import StreamState
from tests.catalog.conftest import catalog_app
from tests.fixtures.auth import MakeClient
from tests.fixtures.redis_server import start_redis

SEEDS = [{"id": "cam-a", "name": "A", "lat": 1.0, "lon": 2.0},
         {"id": "cam-b", "name": "B", "lat": 1.0, "lon": 2.001}]
DEADLINE_S = 1.0
"""Consoles must hear a status change within a second."""


def _no_source() -> Source:
    raise AssertionError("these tests never start a camera")


def _hub() -> StreamHub:
    hub = StreamHub()
    for camera_id in ("cam-a", "cam-b"):
        for profile in ("main", "sub"):
            hub.register(camera_id, profile, _no_source, StreamSettings())
    return hub


async def next_event(response: ClientResponse, accept: Callable[[dict[str, Any]], bool],
                     deadline_s: float = DEADLINE_S) -> dict[str, Any]:
    async with asyncio.timeout(deadline_s):
        while True:
            line = await response.content.readline()
            if not line:
                raise AssertionError("the event stream ended")
            if line.startswith(b"data: "):
                event: dict[str, Any] = json.loads(line[6:])
                if accept(event):
                    return event


async def open_events(client: Any, **params: str) -> ClientResponse:
    response: ClientResponse = await client.get("/api/events", params=params)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    hello = await next_event(response, lambda e: True)
    assert hello == {"type": "hello"}
    return response


def is_status(camera_id: str, status: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("type") == "camera.status" and e.get("id") == camera_id and \
        e.get("status") == status


async def test_state_change_reaches_store_and_console(tmp_path: Path, secret_box: SecretBox,
                                                     make_client: MakeClient) -> None:
    hub = _hub()
    client = await make_client(catalog_app(f"sqlite:///{tmp_path}/live.sqlite3", secret_box,
                                           SEEDS, hub))
    store = client.app[CATALOG_STORE]
    events = await open_events(client, types="camera.status")
    # at start the catalog takes the hub's current state
    async with asyncio.timeout(DEADLINE_S):
        while (await store.get("cam-a")).status is not CameraStatus.IDLE:  # type: ignore[union-attr]
            await asyncio.sleep(0.01)

    started = time.monotonic()
    stream = hub.get("cam-a", "sub")
    stream.last_frame_time = 1700000123.5
    stream.set_state(StreamState.LIVE)
    event = await next_event(events, is_status("cam-a", "live"))
    latency = time.monotonic() - started
    assert event["profiles"] == {"main": "idle", "sub": "live"}
    assert event["last_frame_time"] == 1700000123.5
    camera = await store.get("cam-a")
    assert camera is not None
    assert (camera.status, camera.last_frame_time) == (CameraStatus.LIVE, 1700000123.5)
    feature = await (await client.get("/api/cameras/cam-a")).json()
    assert feature["properties"]["status"] == "live"
    assert latency < DEADLINE_S

    hub.get("cam-a", "sub").set_state(StreamState.RECONNECTING, "camera closed the connection")
    await next_event(events, is_status("cam-a", "reconnecting"))
    live = await (await client.get("/api/cameras", params={"status": "live"})).json()
    assert live["features"] == []


async def test_consoles_on_another_process_hear_it_through_redis(
    redis_url: str, secret_box: SecretBox, make_client: MakeClient,
) -> None:
    await _two_nodes(redis_url, secret_box, make_client)


async def test_consoles_on_another_process_hear_it_through_postgresql(
    postgres_url: str, secret_box: SecretBox, make_client: MakeClient, tmp_path: Path,
) -> None:
    # the schema is upgraded once, as `rtcc db upgrade` does, before the nodes start
    database = Database(DatabaseConfig(url=SecretStr(postgres_url)), tmp_path)
    await (await PostgisCatalog.open(database, owns_database=True, migrate=True)).aclose()
    await _two_nodes(postgres_url, secret_box, make_client)


async def _two_nodes(url: str, secret_box: SecretBox, make_client: MakeClient) -> None:
    hub = _hub()
    ingest_node = await make_client(catalog_app(url, secret_box, SEEDS, hub))
    console_node = await make_client(catalog_app(url, secret_box, SEEDS))
    events = await open_events(console_node)
    only_b = await open_events(console_node, cameras="cam-b")

    hub.get("cam-b", "main").set_state(StreamState.LIVE)
    event = await next_event(events, is_status("cam-b", "live"))
    assert event["profiles"] == {"main": "live", "sub": "idle"}
    assert (await next_event(only_b, lambda e: e.get("type") == "camera.status"))["id"] == "cam-b"
    feature = await (await console_node.get("/api/cameras/cam-b")).json()
    assert feature["properties"]["status"] == "live"

    # catalog writes on one node are announced on the other
    patched = await ingest_node.patch("/api/cameras/cam-a", json={"sharing": "live_always"})
    assert patched.status == 200
    update = await next_event(events, lambda e: e.get("type") == "camera.updated")
    assert (update["id"], update["camera"]["sharing"]) == ("cam-a", "live_always")
    assert "password" not in json.dumps(update).replace("has_password", "")


async def test_a_slow_console_does_not_hold_up_the_others() -> None:
    broadcaster = Broadcaster(queue_size=16)
    slow = broadcaster.subscribe()  # never read
    fast = broadcaster.subscribe()
    received: list[str] = []

    async def read_fast() -> None:
        while (item := await fast.next(5.0)) is not None:
            received.append(item)

    reader = asyncio.create_task(read_fast(), name="test:fast-console")
    for n in range(200):
        broadcaster.publish({"type": "camera.status", "n": n})  # never awaits a console
        if n % 8 == 0:
            await asyncio.sleep(0)
    await asyncio.sleep(0.05)
    broadcaster.close()
    await reader
    assert [json.loads(item)["n"] for item in received] == list(range(200))
    assert slow.overflowed
    assert slow.closed
    assert broadcaster.dropped_clients == 1
    assert broadcaster.clients == 0


async def test_slow_sse_client_is_disconnected_not_waited_for(
    tmp_path: Path, secret_box: SecretBox, make_client: MakeClient,
) -> None:
    hub = _hub()
    client = await make_client(catalog_app(f"sqlite:///{tmp_path}/slow.sqlite3", secret_box,
                                           SEEDS, hub))
    slow = await open_events(client)
    fast = await open_events(client)
    feed = client.app[LIVE_FEED]
    big = "x" * 20_000
    for n in range(2000):  # 40 MB: more than socket buffers hold for a client that never reads
        feed.publish({"type": "noise", "n": n, "pad": big})
        event = await next_event(fast, lambda e: e.get("type") == "noise", deadline_s=5.0)
        assert event["n"] == n
        if feed.dropped_clients:
            break
    assert feed.dropped_clients == 1
    assert feed.clients == 1
    slow.close()


async def test_redis_going_away_does_not_break_ingest_or_the_api(
    tmp_path: Path, secret_box: SecretBox, make_client: MakeClient,
) -> None:
    server = start_redis(tmp_path)
    try:
        hub = _hub()
        client = await make_client(catalog_app(server.url, secret_box, SEEDS, hub))
        assert (await client.get("/api/cameras/cam-a")).status == 200
        server.process.terminate()
        server.process.wait(timeout=5)
        hub.get("cam-a", "main").set_state(StreamState.LIVE)  # the hub is not held up
        assert hub.get("cam-a", "main").state is StreamState.LIVE
        response = await client.get("/api/cameras/cam-a")
        assert response.status == 503
        assert "unavailable" in (await response.json())["error"]
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()
