"""A real full disk: the recordings folder on a 24 MiB tmpfs, filled by another writer in the
middle of a long segment. Recording stops with an alert before the segment would have ended (the
writer checks the free space after each batch), the segments written verify against their
hashes, the live view keeps decoding, and recording resumes once space is freed.
Mounting needs root; elsewhere the free-space floor simulation (test_recorder.py) covers the stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from evidence.store import EvidenceStore
from recording.segments import hash_file
from recording.store import SegmentRow
from rtcc.config import (
    CameraConfig,
    EvidenceConfig,
    ProfileConfig,
    SecurityConfig,
    Settings,
    SharingLevel,
)
from rtcc.policy import Role
from server.app import create_app
from tests.fixtures.auth import MakeClient, bearer, role_headers
from tests.fixtures.camsim import CamsimHandle
from tests.relay.whep_client import WhepViewer

MIB = 2**20
SEGMENT_SECONDS = 60
"""The longest allowed, far longer than the fill: only a check during the segment can notice the fill."""


@contextlib.contextmanager
def tmpfs(path: Path, size_mib: int) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (the free-space floor case runs without it: "
                    "tests/evidence/test_recorder.py)")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs",
                              str(path)], capture_output=True, text=True, timeout=30, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30, check=False)


def fill(path: Path, leave: int) -> None:
    """Write a file until only about ``leave`` bytes are free."""
    with path.open("wb") as out:
        while (free := shutil.disk_usage(path.parent).free) > leave:
            out.write(b"\0" * min(MIB, free - leave))
            out.flush()


def closed_segments(data_dir: Path, camera_id: str) -> list[SegmentRow]:
    store = EvidenceStore.open_in(data_dir)
    try:
        return store.segments_between(camera_id, 0.0, time.time() + 3600)
    finally:
        store.close()


async def status(client: TestClient[Any, Any], headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/api/recordings/status", headers=headers)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def test_a_full_recordings_disk_stops_recording_live_continues_and_it_resumes(
    tmp_path: Path, camsim: CamsimHandle, bootstrap_token: str, make_client: MakeClient
) -> None:
    data_dir = tmp_path / "data"
    with tmpfs(data_dir / "evidence", 24) as disk:
        settings = Settings(
            data_dir=data_dir, reconcile_seconds=1.0,
            evidence=EvidenceConfig(segment_seconds=SEGMENT_SECONDS, min_free_mb=6),
            security=SecurityConfig(allow_private_camera_hosts=["127.0.0.0/8"]),
            cameras=[CameraConfig(id="rec", name="camsim open", lat=40.0, lon=-75.0,
                                  sharing=SharingLevel.LIVE_ALWAYS, record=True,
                                  profiles={"main": ProfileConfig(url=camsim.url("open"))})])
        client = await make_client(create_app(settings))
        base = str(client.make_url("")).rstrip("/")
        admin = bearer(bootstrap_token)
        _, analyst = await role_headers(client, admin, Role.ANALYST)

        async def recorder() -> dict[str, Any]:
            recorders = (await status(client, analyst))["recorders"]
            return next((r for r in recorders if r["camera_id"] == "rec"), {})

        async def until(check: Any, what: str, timeout: float = 30) -> dict[str, Any]:
            deadline = time.monotonic() + timeout
            while not check(found := await recorder()):
                assert time.monotonic() < deadline, f"timed out waiting for {what}: {found}"
                await asyncio.sleep(0.25)
            return found

        await until(lambda r: (r.get("current_segment_seconds") or 0) >= 1,
                    "a segment being written")
        async with aiohttp.ClientSession() as http:
            viewer = WhepViewer(base, "rec", headers=analyst, query={"purpose": "disk test"})
            try:
                await viewer.connect(http)
                await viewer.wait_frames(10, timeout=20)

                filler = disk / "filler.bin"
                # Below the 6 MiB floor, with room left for minutes of this camera: without a
                # check while the segment is written, nothing would stop it in time.
                await asyncio.to_thread(fill, filler, 4 * MIB)
                stopped = await until(lambda r: r.get("state") == "disk_full",
                                      "recording to stop on the full disk")
                assert stopped["segments_started"] == 1
                assert "MiB free on the recordings disk" in stopped["reason"]
                segments = await asyncio.to_thread(closed_segments, data_dir, "rec")
                assert len(segments) == 1
                cut, = segments
                assert cut.utc_end is not None
                assert cut.utc_end - cut.utc_start < SEGMENT_SECONDS  # stopped mid-segment
                assert "cut short" not in cut.note  # closed cleanly, not by a failed write
                for segment in segments:
                    assert segment.sha256 == (await asyncio.to_thread(
                        hash_file, disk / segment.path))[0], segment
                overview = await status(client, analyst)
                assert overview["state"] == "disk_full"
                assert any(a["camera_id"] == "rec" for a in overview["alerts"])
                before = viewer.decoded.count
                deadline = time.monotonic() + 20
                while viewer.decoded.count < before + 30:
                    assert time.monotonic() < deadline, "the live view stopped on a full disk"
                    await asyncio.sleep(0.1)

                await asyncio.to_thread(filler.unlink)
                # A new recorder (the stopped one is replaced) writes a segment again.
                await until(lambda r: r.get("state") == "recording"
                            and (r.get("current_segment_seconds") or 0) >= 1,
                            "recording to resume")
            finally:
                await viewer.close()
