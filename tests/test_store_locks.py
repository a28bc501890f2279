"""A store's SQLite file locked by another process must not freeze the viewers.

One real server (camsim camera, RTSP ingest, catalog, security, agent and evidence stores) and
one aiortc WHEP viewer serve every case. For each store a child process holds a write lock on the
store's file (``BEGIN IMMEDIATE``, as ``rtcc export`` or ``rtcc user`` would while they work)
while the test sends a request that writes to that store. The frames the viewer decodes while the
lock is held are compared with those of an equal window just before: the request waits for the
lock, the video does not. A store whose writes still run on the event loop fails its case.

Adding a store is one ``pytest.param`` line in ``CASES``.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from camsim.runner import Camsim, CamsimUnavailable
from rtcc.config import (
    CameraConfig,
    CamsimConfig,
    HubConfig,
    ProfileConfig,
    SecurityConfig,
    Settings,
    SharingLevel,
)
from tests.agent.harness import Api, ServerHarness, account
from tests.fixtures.auth import BOOTSTRAP_TOKEN, bearer
from tests.fixtures.camsim import STANDARD_CAMERAS, CamsimHandle
from tests.relay.whep_client import WhepViewer

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

LOCK_S = 5.0
"""How long the other process holds the lock; the baseline window is as long."""
KEPT = 0.7
"""Share of the baseline's frames the viewer must still decode while the lock is held."""

LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


class FrameSamples:
    """The viewer's decoded-frame count, sampled by a thread every 10 ms: the samples stay on
    time even while the event loop is blocked, so frames decoded late do not count early."""

    def __init__(self, viewer: WhepViewer) -> None:
        self._viewer = viewer
        self._times: list[float] = []
        self._counts: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test:frame-samples",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            count = self._viewer.decoded.count
            self._times.append(time.monotonic())
            self._counts.append(count)

    def count_at(self, when: float) -> int:
        index = bisect.bisect_right(self._times, when) - 1
        assert index >= 0, "no sample that early"
        return self._counts[index]

    def between(self, start: float, end: float) -> int:
        return self.count_at(end) - self.count_at(start)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Rig:
    server: ServerHarness
    api: Api
    admin: dict[str, str]
    frames: FrameSamples
    rate: float
    """Frames per second the viewer decoded after it started."""

    async def steady(self, within: float = 30.0) -> None:
        """Wait until each half second of the last two had about the starting frame rate."""
        expected = self.rate / 2
        async with asyncio.timeout(within):
            while True:
                now = time.monotonic()
                halves = [self.frames.between(now - 0.5 * (i + 1), now - 0.5 * i)
                          for i in range(4)]
                if all(0.5 * expected <= n <= 1.5 * expected for n in halves):
                    return
                await asyncio.sleep(0.25)

    @property
    def data_dir(self) -> Path:
        return self.server.settings.data_dir


_serial = itertools.count(1)


async def update_camera(rig: Rig) -> int:
    """Catalog: rename the spare camera (the viewed one is left alone)."""
    status, _ = await rig.api.call("PATCH", "/api/cameras/spare", rig.admin,
                                   json={"name": f"spare camera {next(_serial)}"})
    return status


async def create_enrollment(rig: Rig) -> int:
    """Agent store: a one-time enrollment token for an owner's agent."""
    status, _ = await rig.api.call("POST", "/api/agent/enrollments", rig.admin,
                                   json={"owner_id": "shop1"})
    return status


async def create_account(rig: Rig) -> int:
    """Security store: a new account."""
    status, _ = await rig.api.call(
        "POST", "/api/users", rig.admin,
        json={"username": f"lock-test-{next(_serial)}", "role": "owner", "owner_id": "shop9",
              "password": "correct horse battery staple"})
    return status


async def add_hold(rig: Rig) -> int:
    """Evidence store: a legal hold on the last hour of the viewed camera."""
    now = time.time()
    status, _ = await rig.api.call(
        "POST", "/api/holds", rig.admin,
        json={"camera": "open", "from": now - 3600, "to": now, "case": "24-1187",
              "reason": "store lock test"})
    return status


@dataclass(frozen=True)
class StoreCase:
    file: str
    """The store's file in the data directory."""
    write: Callable[[Rig], Awaitable[int]]
    """A request that writes to the store; returns its HTTP status."""
    expect: int


CASES = [
    pytest.param(StoreCase("rtcc.sqlite3", update_camera, 200), id="catalog"),
    pytest.param(StoreCase("agents.sqlite3", create_enrollment, 201), id="agent"),
    pytest.param(StoreCase("security.sqlite3", create_account, 201), id="security"),
    pytest.param(StoreCase("evidence.sqlite3", add_hold, 201), id="evidence"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    sim = Camsim(CamsimConfig(host="127.0.0.1", cameras=[STANDARD_CAMERAS[0]]), port=0)
    try:
        await sim.start()
    except CamsimUnavailable as exc:
        pytest.skip(f"camera simulator unavailable: {exc}")
    camera_url = CamsimHandle(sim).url("open")
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("store-locks") / "data",
        hub=HubConfig(close_after=2.0),
        security=SecurityConfig(allow_private_camera_hosts=["127.0.0.0/8"]),
        cameras=[CameraConfig(id=camera_id, name=f"{camera_id} camera", lat=40.0, lon=-75.0,
                              sharing=SharingLevel.LIVE_ALWAYS,
                              profiles={"main": ProfileConfig(url=camera_url)})
                 for camera_id in ("open", "spare")],
    )
    server = ServerHarness(settings, test_directory=False)  # consent from the real catalog
    viewer: WhepViewer | None = None
    frames: FrameSamples | None = None
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RTCC_BOOTSTRAP_TOKEN", BOOTSTRAP_TOKEN)
        env.delenv("RTCC_SECRET_KEY", raising=False)
        await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(server.url, http)
            admin = bearer(BOOTSTRAP_TOKEN)
            analyst = await account(api, admin, "lock-analyst", "analyst")
            viewer = WhepViewer(server.url, "open", headers=analyst,
                                query={"purpose": "store lock test"})
            await viewer.connect(http)
            await viewer.wait_frames(15, timeout=30)
            frames = FrameSamples(viewer)
            await asyncio.sleep(LOCK_S)
            now = time.monotonic()
            rate = frames.between(now - LOCK_S + 0.1, now) / (LOCK_S - 0.1)
            assert rate > 0, "the viewer decodes no frames"
            yield Rig(server, api, admin, frames, rate)
    finally:
        if frames is not None:
            frames.stop()
        if viewer is not None:
            await viewer.close()
        await server.stop()
        await sim.stop()


async def hold_lock(path: Path, seconds: float) -> asyncio.subprocess.Process:
    """A child process that holds a write lock on ``path`` for ``seconds`` (returns once the
    lock is taken)."""
    locker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LOCKER, str(path), str(seconds),
        stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    assert locker.stdout is not None
    line = await asyncio.wait_for(locker.stdout.readline(), 30)
    assert line.strip() == b"locked", line
    return locker


@pytest.mark.parametrize("case", CASES)
async def test_viewer_keeps_its_frames_while_another_process_locks_a_store(
    rig: Rig, case: StoreCase
) -> None:
    path = rig.data_dir / case.file
    assert path.exists(), f"{case.file} is not in the data directory"
    # A case that froze the loop leaves a burst and a reconnect behind: wait them out, then
    # the baseline window, the viewer alone.
    await rig.steady()
    await asyncio.sleep(LOCK_S)
    # The lock outlasts the measured window on both sides.
    locker = await hold_lock(path, LOCK_S + 0.5)
    try:
        started = time.monotonic()
        write = asyncio.get_running_loop().create_task(case.write(rig),
                                                       name=f"test:write:{case.file}")
        await asyncio.sleep(LOCK_S - 1.0)
        waited_for_lock = not write.done()
        status = await asyncio.wait_for(write, 30)
        assert await asyncio.wait_for(locker.wait(), 30) == 0
    finally:
        if locker.returncode is None:
            locker.kill()
            await locker.wait()
    while time.monotonic() < started + LOCK_S + 0.1:
        await asyncio.sleep(0.05)
    before = rig.frames.between(started - LOCK_S, started)
    during = rig.frames.between(started, started + LOCK_S)
    print(f"{case.file}: {before} frames before the lock, {during} while it was held")
    assert before > 0, "the viewer decoded nothing before the lock"
    assert during >= KEPT * before, (
        f"the viewer decoded {during} frames while {case.file} was locked, "
        f"{before} in the {LOCK_S:g} s before")
    assert waited_for_lock, f"the write to {case.file} did not wait for the lock"
    assert status == case.expect
