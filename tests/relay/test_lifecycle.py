"""Every way a session ends leaves nothing behind and records the end of the view once."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from collections.abc import AsyncIterator

import aiohttp
import pytest

from relay.settings import RelaySettings
from rtcc.hub import StreamSettings
from tests.relay.clip import Clip
from tests.relay.conftest import RelayServer, start_server
from tests.relay.whep_client import WhepViewer


@pytest.fixture
async def quick_server(small_clip: Clip) -> AsyncIterator[RelayServer]:
    srv, runner = await start_server(
        {"cam1": {"main": small_clip}},
        RelaySettings(connect_timeout=2.0, viewer_timeout=3.0),
        StreamSettings(close_after=60.0, start_timeout=5.0),  # the camera stays up throughout
    )
    try:
        yield srv
    finally:
        await runner.cleanup()


async def wait_until(condition: object, timeout: float = 10.0) -> None:
    assert callable(condition)
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


def task_names() -> list[str]:
    return sorted(task.get_name() for task in asyncio.all_tasks())


def thread_names() -> list[str]:
    return sorted(thread.name for thread in threading.enumerate())


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0.1)
        gc.collect()


async def test_fifty_connect_delete_cycles_leave_nothing_behind(
    quick_server: RelayServer, http: aiohttp.ClientSession
) -> None:
    async def cycle() -> None:
        viewer = WhepViewer(quick_server.url, "cam1")
        try:
            await viewer.connect(http)
            await viewer.wait_first_frame()
            assert await viewer.delete(http) == 200
        finally:
            await viewer.close()

    await cycle()  # first use creates what stays for the process (thread pools, caches)
    await settle()
    tasks, threads, fds = task_names(), thread_names(), open_fds()
    for _ in range(50):
        await cycle()
    await settle()
    print(f"tasks {len(tasks)}->{len(task_names())}, threads {len(threads)}->"
          f"{len(thread_names())}, fds {fds}->{open_fds()}")
    assert task_names() == tasks
    assert thread_names() == threads
    assert open_fds() == fds
    assert len(quick_server.registry) == 0
    assert quick_server.registry.stats()["streams"] == []
    assert quick_server.registry.opened == quick_server.registry.ended == 51
    assert quick_server.access.open_views == 0
    assert quick_server.hub.get("cam1", "main").subscriber_count == 0


async def test_shutdown_closes_every_session(small_clip: Clip,
                                             http: aiohttp.ClientSession) -> None:
    srv, runner = await start_server({"cam1": {"main": small_clip}})
    viewers = [WhepViewer(srv.url, "cam1") for _ in range(3)]
    try:
        for viewer in viewers:
            await viewer.connect(http)
        await asyncio.gather(*(v.wait_first_frame() for v in viewers))
        sessions = srv.registry.sessions()
        await runner.cleanup()
        assert len(srv.registry) == 0
        assert all(s.pc.connectionState == "closed" for s in sessions)
        assert [reason for _, reason in srv.access.closed] == ["server shutting down"] * 3
    finally:
        await asyncio.gather(*(v.close() for v in viewers))


async def test_viewer_leaving_without_delete_ends_its_session(
    quick_server: RelayServer, http: aiohttp.ClientSession
) -> None:
    viewer = WhepViewer(quick_server.url, "cam1")
    await viewer.connect(http)
    await viewer.wait_first_frame()
    await viewer.close()
    await wait_until(lambda: len(quick_server.registry) == 0)
    ((_, reason),) = quick_server.access.closed
    assert "connection" in reason


async def test_revoked_consent_ends_the_session(
    quick_server: RelayServer, http: aiohttp.ClientSession
) -> None:
    viewer = WhepViewer(quick_server.url, "cam1")
    try:
        await viewer.connect(http)
        await viewer.wait_first_frame()
        assert quick_server.hub.close_camera_sessions("cam1", "consent revoked by the owner") == 1
        await wait_until(lambda: len(quick_server.registry) == 0)
        ((_, reason),) = quick_server.access.closed
        assert reason == "consent revoked by the owner"
    finally:
        await viewer.close()


async def test_viewer_that_never_connects_is_dropped(
    quick_server: RelayServer, http: aiohttp.ClientSession
) -> None:
    viewer = WhepViewer(quick_server.url, "cam1")
    await viewer.connect(http)
    await viewer.pc.close()  # gone before ICE could complete
    await wait_until(lambda: len(quick_server.registry) == 0, timeout=8)
    ((_, reason),) = quick_server.access.closed
    assert "did not connect" in reason or "connection" in reason
    await viewer.close()


async def test_mismatched_dtls_fingerprint_fails_the_session(
    quick_server: RelayServer, http: aiohttp.ClientSession
) -> None:
    other = WhepViewer(quick_server.url, "cam1")
    other_offer = await other.offer()
    foreign = [line for line in other_offer.splitlines() if line.startswith("a=fingerprint:")]
    await other.pc.close()

    viewer = WhepViewer(quick_server.url, "cam1")
    viewer.rewrite_offer = lambda sdp: "\r\n".join(
        line for line in sdp.splitlines() if not line.startswith("a=fingerprint:")
    ) + "\r\n" + "\r\n".join(foreign) + "\r\n"
    try:
        await viewer.connect(http)
        await wait_until(lambda: len(quick_server.registry) == 0, timeout=8)
        assert viewer.decoded.count == 0
        ((_, reason),) = quick_server.access.closed
        assert "failed" in reason or "connection" in reason or "did not connect" in reason
    finally:
        await viewer.close()
