"""A panic button press arriving on every console's alert stream.

``python -m benchmarks panic_to_console [--consoles 3] [--runs 20]`` starts the real application
(a school with a floor, a room and one enrolled device), opens ``--consoles`` analysts' alert
streams (``GET /api/panic/alerts/stream``, server-sent events, each its own token), and for each
run POSTs a new alert as the device (``POST /panic/api/alerts``, not a drill: the CAD incident is
opened as in production) and waits until the alert's event is on every stream. Times are taken
in this process (``perf_counter``) from just before the POST; ``ack_ms`` is the device's answer
(stored), ``stream_ms`` the last stream showing the alert. Prints JSON with p50/p95/max.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from benchmarks.console_pin_to_wall import BOOTSTRAP, PASSWORD, free_port, summary
from catalog.keys import CATALOG_STORE
from catalog.model import Site
from rtcc.config import FacilitiesConfig, SecurityConfig, Settings
from server.app import create_app

PIN = (39.80000, -89.64500)
TIMEOUT = aiohttp.ClientTimeout(total=20)


def settings(data: Path) -> Settings:
    return Settings(data_dir=data, store=f"sqlite:///{data / 'catalog.sqlite3'}",
                    security=SecurityConfig(require_totp=False),
                    facilities=FacilitiesConfig(flood_alerts=1000))


async def _json(response: aiohttp.ClientResponse, status: int, what: str) -> Any:
    body = await response.json()
    if response.status != status:
        raise RuntimeError(f"{what}: {response.status} {body}")
    return body


async def user(http: aiohttp.ClientSession, base: str, name: str, role: str,
               owner_id: str = "") -> dict[str, str]:
    """A new account and a bearer header for it."""
    body = {"username": name, "role": role, "password": PASSWORD}
    if owner_id:
        body["owner_id"] = owner_id
    async with http.post(f"{base}/api/users", json=body) as r:
        created = await _json(r, 201, f"creating {name}")
    async with http.post(f"{base}/api/users/{created['user']['id']}/tokens",
                         json={"name": "bench"}) as r:
        token = await _json(r, 201, f"a token for {name}")
    return {"Authorization": f"Bearer {token['token']}"}


async def school(app: web.Application, base: str, consoles: int
                 ) -> tuple[list[dict[str, str]], str]:
    """(the analysts' headers, the device's token)."""
    d = 0.0005
    lat, lon = PIN
    await app[CATALOG_STORE].put_site(Site(
        id="bench-school", owner_id="bench-owner", address="1 School Rd",
        outline=((lon - d, lat - d), (lon + d, lat - d), (lon + d, lat + d), (lon - d, lat + d))))
    admin = {"Authorization": f"Bearer {BOOTSTRAP}"}
    async with aiohttp.ClientSession(headers=admin, timeout=TIMEOUT) as http:
        owner = await user(http, base, "bench-owner", "owner", "bench-owner")
        analysts = [await user(http, base, f"bench-analyst-{n}", "analyst")
                    for n in range(consoles)]
    async with aiohttp.ClientSession(headers=owner, timeout=TIMEOUT) as http:
        async with http.post(f"{base}/api/facilities", json={
                "site_id": "bench-school", "name": "Bench Elementary"}) as r:
            facility = await _json(r, 201, "the facility")
        fid = facility["id"]
        async with http.post(f"{base}/api/facilities/{fid}/floors",
                             json={"name": "Ground floor"}) as r:
            floor = await _json(r, 201, "the floor")
        async with http.post(f"{base}/api/facilities/{fid}/rooms", json={
                "floor_id": floor["id"], "name": "Library", "number": "104"}) as r:
            room = await _json(r, 201, "the room")
        async with http.post(f"{base}/api/facilities/{fid}/enrolments",
                             json={"label": "Office", "room_id": room["id"]}) as r:
            code = await _json(r, 201, "the enrolment")
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http, http.post(
            f"{base}/panic/api/enrol", json={"secret": code["secret"]}) as r:
        device = await _json(r, 201, "enrolling the device")
    return analysts, str(device["device_token"])


async def listen(http: aiohttp.ClientSession, url: str, headers: dict[str, str],
                 seen: dict[str, float], opened: asyncio.Event) -> None:
    """Record when each alert (by the device's id for it) first arrives on this stream."""
    async with http.get(url, headers=headers,
                        timeout=aiohttp.ClientTimeout(total=None, sock_read=60)) as response:
        if response.status != 200:
            raise RuntimeError(f"the alert stream answered {response.status}")
        async for line in response.content:
            if line.startswith(b": ready"):
                opened.set()
            elif line.startswith(b"data: "):
                client_id = json.loads(line[6:])["client_id"]
                seen.setdefault(client_id, time.perf_counter())


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix="rtcc-bench-panic-"))
    os.environ["RTCC_BOOTSTRAP_TOKEN"] = BOOTSTRAP
    os.environ.pop("RTCC_SECRET_KEY", None)
    app = create_app(settings(data))
    runner = web.AppRunner(app)
    await runner.setup()
    acks: list[float] = []
    streams: list[float] = []
    try:
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        base = f"http://127.0.0.1:{port}"
        analysts, token = await school(app, base, args.consoles)
        seen: list[dict[str, float]] = [{} for _ in range(args.consoles)]
        async with aiohttp.ClientSession() as http:
            opened = [asyncio.Event() for _ in range(args.consoles)]
            listeners = [asyncio.create_task(
                listen(http, f"{base}/api/panic/alerts/stream", analysts[n],
                       seen[n], opened[n]), name=f"bench:stream:{n}")
                for n in range(args.consoles)]
            try:
                async with asyncio.timeout(20):
                    await asyncio.gather(*(o.wait() for o in opened))
                device = {"X-Device-Token": token}
                for number in range(args.runs + 1):  # the first run warms up
                    client_id = f"bench-{number:06d}"
                    start = time.perf_counter()
                    async with http.post(f"{base}/panic/api/alerts", headers=device, json={
                            "id": client_id, "level": "lockdown"}, timeout=TIMEOUT) as r:
                        await _json(r, 201, "the alert")
                    ack = time.perf_counter()
                    async with asyncio.timeout(20):
                        while not all(client_id in s for s in seen):
                            if any(t.done() for t in listeners):
                                raise RuntimeError("an alert stream ended early")
                            await asyncio.sleep(0.005)  # the times come from the streams
                    if number:
                        acks.append((ack - start) * 1000)
                        streams.append((max(s[client_id] for s in seen) - start) * 1000)
            finally:
                for task in listeners:
                    task.cancel()
                for task in listeners:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
    finally:
        await runner.cleanup()
        shutil.rmtree(data, ignore_errors=True)
    return {
        "benchmark": "panic_to_console",
        "what": "panic API POST -> stored and answered (ack) and the alert event on every "
                "console's SSE stream (stream)",
        "consoles": args.consoles, "runs": len(streams),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "ack": summary(acks), "stream": summary(streams),
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks panic_to_console")
    parser.add_argument("--consoles", type=int, default=3)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
