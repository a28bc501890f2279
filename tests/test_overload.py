"""Admission control: while the event loop runs late, new views are refused with 503 and
``Retry-After`` and the views already open keep decoding; ``/metrics`` reports the lag."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
from aiortc import RTCPeerConnection

from rtcc.config import (
    CameraConfig,
    OverloadConfig,
    ProfileConfig,
    SecurityConfig,
    Settings,
    SharingLevel,
)
from rtcc.looplag import LoopLag
from rtcc.policy import Role
from server.app import create_app
from server.resilience import LOOP_LAG
from tests.fixtures.auth import MakeClient, bearer, role_headers
from tests.fixtures.camsim import CamsimHandle
from tests.relay.whep_client import WhepViewer, make_offer


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_sustained_lag_overloads_and_one_that_ends_recovers() -> None:
    clock = FakeClock()
    lag = LoopLag(interval=0.1, window=5.0, threshold=0.2, sustain=1.0, clock=clock)
    for _ in range(20):  # late every other sample: still one streak
        clock.now += 0.3
        lag.record(0.3)
        clock.now += 0.1
        lag.record(0.0)
    assert lag.overloaded()
    assert lag.max_recent() == 0.3
    clock.now += 1.5  # no late sample for longer than sustain
    lag.record(0.0)
    assert not lag.overloaded()
    clock.now += 0.3
    lag.record(0.5)  # one short stall is not an overload
    assert not lag.overloaded()
    text = lag.prometheus()
    assert "rtcc_event_loop_lag_seconds 0.5" in text
    assert 'rtcc_event_loop_lag_histogram_seconds_bucket{le="+Inf"} 42' in text
    assert 'rtcc_event_loop_lag_histogram_seconds_bucket{le="0.25"} 21' in text


async def _block_the_loop(stop: asyncio.Event, block: float, pause: float, limit: float) -> None:
    """CPU-bound work on the event loop, as a handler that forgot its thread would do."""
    deadline = time.monotonic() + limit
    while not stop.is_set() and time.monotonic() < deadline:
        end = time.monotonic() + block
        while time.monotonic() < end:
            pass
        await asyncio.sleep(pause)


async def test_new_views_are_refused_while_the_loop_lags_and_open_views_continue(
    tmp_path: Path, camsim: CamsimHandle, bootstrap_token: str, make_client: MakeClient
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        security=SecurityConfig(allow_private_camera_hosts=["127.0.0.0/8"]),
        overload=OverloadConfig(lag_threshold=0.1, sustain=0.5, sample_interval=0.05,
                                window=4.0),
        cameras=[CameraConfig(id="open", name="camsim open", lat=40.0, lon=-75.0,
                              sharing=SharingLevel.LIVE_ALWAYS,
                              profiles={"main": ProfileConfig(url=camsim.url("open"))})])
    app = create_app(settings)
    client = await make_client(app)
    base = str(client.make_url("")).rstrip("/")
    admin = bearer(bootstrap_token)
    _, analyst = await role_headers(client, admin, Role.ANALYST)
    lag = app[LOOP_LAG]
    async with aiohttp.ClientSession() as http:
        watching = WhepViewer(base, "open", headers=analyst, query={"purpose": "overload test"})
        try:
            await watching.connect(http)
            await watching.wait_frames(10, timeout=20)
            stop = asyncio.Event()
            blocker = asyncio.create_task(_block_the_loop(stop, 0.15, 0.1, 60.0))
            try:
                deadline = time.monotonic() + 20
                while not lag.overloaded():
                    assert time.monotonic() < deadline, "the loop lag was never seen"
                    await asyncio.sleep(0.05)
                before = watching.decoded.count
                pc = RTCPeerConnection()
                try:
                    refused = await client.post(
                        "/whep/open", data=await make_offer(pc),
                        headers={**analyst, "Content-Type": "application/sdp"},
                        params={"purpose": "overload test"})
                finally:
                    await pc.close()
                assert refused.status == 503
                assert int(refused.headers["Retry-After"]) >= 1
                assert "overloaded" in (await refused.json())["error"]
                metrics = await (await client.get("/metrics", headers=admin)).text()
                assert "rtcc_event_loop_overloaded 1" in metrics
                assert "rtcc_admission_refused_total 1" in metrics
                assert "rtcc_event_loop_lag_max_seconds" in metrics
                # The open view keeps decoding through the overload.
                deadline = time.monotonic() + 20
                while watching.decoded.count < before + 10:
                    assert time.monotonic() < deadline, "the open view stopped decoding"
                    await asyncio.sleep(0.1)
                assert lag.overloaded()
            finally:
                stop.set()
                await blocker
            deadline = time.monotonic() + 20
            while lag.overloaded():
                assert time.monotonic() < deadline, "the overload never ended"
                await asyncio.sleep(0.1)
            again = WhepViewer(base, "open", headers=analyst, query={"purpose": "overload test"})
            try:
                await again.connect(http)
                await again.wait_frames(5, timeout=20)
            finally:
                await again.close()
        finally:
            await watching.close()
