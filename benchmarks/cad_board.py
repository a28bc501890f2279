"""An EIDO arriving to the incident on every console's board, in headless Debian Chromium.

``python -m benchmarks cad_board [--consoles 3] [--runs 20]`` starts the real application with
one emergency camera near the incident (so the emergency-access hook runs its catalog queries
and grants, as in production), opens ``--consoles`` wall consoles in Chromium (each its own
session), and for each run POSTs a new EIDO with an integration token and waits until the
incident is on every board. Times are taken in this process (``perf_counter``) from just before
the POST; ``ack_ms`` is the POST's answer (stored), ``board_ms`` the last console showing it.
Prints JSON with p50/p95/max.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from playwright.async_api import Page, async_playwright

from benchmarks.console_pin_to_wall import (
    BOOTSTRAP,
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORD,
    free_port,
    summary,
)
from cadsim.scenario import iso, pidf_point
from rtcc.config import (
    CameraConfig,
    EmergencyPolicy,
    IncidentsConfig,
    SecurityConfig,
    Settings,
    SharingLevel,
)
from server.app import create_app

PIN = (39.80000, -89.64500)


def settings(data: Path) -> Settings:
    camera = CameraConfig(id="school", name="School gate", lat=PIN[0] + 0.0003, lon=PIN[1],
                          heading=180, fov=90, range_m=80, sharing=SharingLevel.LIVE_EMERGENCY)
    return Settings(
        data_dir=data, store=f"sqlite:///{data / 'catalog.sqlite3'}",
        security=SecurityConfig(require_totp=False), cameras=[camera],
        incidents=IncidentsConfig(emergency_policies={"SHOTS": EmergencyPolicy(unlock=True)}))


def eido(number: int) -> dict[str, Any]:
    tid = f"urn:emergency:uid:incidentid:bench{number:06d}:cad.bench.example"
    stamp = iso(datetime.now(UTC))
    return {"incidentTrackingIdentifier": tid, "lastUpdateTimeStamp": stamp,
            "incidentComponent": [{"incidentTypeInternalCode": "SHOTS",
                                   "incidentTypeInternalText": "Shots fired",
                                   "incidentStatusInternalText": ["DISP"]}],
            "locationComponent": [{"locationByValue": pidf_point(*PIN, stamp)}]}


async def accounts(base: str) -> str:
    """Create the analyst and the CAD's integration account; returns the CAD's token."""
    admin = {"Authorization": f"Bearer {BOOTSTRAP}"}
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(headers=admin, timeout=timeout) as http:
        async with http.post(f"{base}/api/users", json={
                "username": "bench-analyst", "role": "analyst", "password": PASSWORD}) as r:
            if r.status != 201:
                raise RuntimeError(f"cannot create the analyst: {await r.text()}")
        async with http.post(f"{base}/api/users", json={
                "username": "bench-cad", "role": "integration", "token_only": True}) as r:
            user = (await r.json())["user"]
        async with http.post(f"{base}/api/users/{user['id']}/tokens",
                             json={"name": "bench"}) as r:
            token: str = (await r.json())["token"]
    return token


async def console(browser: Any, base: str) -> Page:
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page: Page = await context.new_page()
    await page.goto(f"{base}/console/")
    await page.wait_for_url("**/login?next=*")
    await page.fill("#username", "bench-analyst")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_selector("body[data-ready=true]")
    return page


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix="rtcc-bench-cad-"))
    os.environ["RTCC_BOOTSTRAP_TOKEN"] = BOOTSTRAP
    os.environ.pop("RTCC_SECRET_KEY", None)
    runner = web.AppRunner(create_app(settings(data)))
    await runner.setup()
    acks: list[float] = []
    boards: list[float] = []
    try:
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        base = f"http://127.0.0.1:{port}"
        token = await accounts(base)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM,
                                                       args=CHROMIUM_ARGS)
            try:
                pages = [await console(browser, base) for _ in range(args.consoles)]
                async with aiohttp.ClientSession(
                        headers={"Authorization": f"Bearer {token}"}) as http:
                    for number in range(args.runs + 1):  # the first run warms up
                        document = eido(number)
                        selector = (f"#board-list li[data-incident-id="
                                    f"'{document['incidentTrackingIdentifier']}']")
                        waits = [asyncio.ensure_future(p.wait_for_selector(selector,
                                                                           timeout=20_000))
                                 for p in pages]
                        start = time.perf_counter()
                        async with http.post(f"{base}/api/cad/eido", json=document) as r:
                            if r.status != 200:
                                raise RuntimeError(f"EIDO refused: {await r.text()}")
                        ack = time.perf_counter()
                        await asyncio.gather(*waits)
                        done = time.perf_counter()
                        if number:
                            acks.append((ack - start) * 1000)
                            boards.append((done - start) * 1000)
            finally:
                await browser.close()
    finally:
        await runner.cleanup()
        shutil.rmtree(data, ignore_errors=True)
    return {
        "benchmark": "cad_board",
        "what": "EIDO POST -> stored and acknowledged (ack) and on every console's board "
                "(board), headless Chromium, SSE",
        "consoles": args.consoles, "runs": len(boards),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "ack": summary(acks), "board": summary(boards),
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks cad_board")
    parser.add_argument("--consoles", type=int, default=3)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    if shutil.which(CHROMIUM) is None:
        print(json.dumps({"error": "Debian chromium is not installed"}))
        sys.exit(1)
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
