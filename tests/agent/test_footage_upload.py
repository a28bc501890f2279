"""Footage requests answered by a real agent process from its rolling buffer.

camsim -> `rtcc agent --buffer-hours ...` (its own RTSP pull, 4 s segments hashed at capture)
-> the server (the real application on loopback). An investigator asks for 10 s; the owner
approves; the server tells the agent over the control WebSocket; the agent uploads at a limited
rate and is killed mid-upload (SIGKILL), started again, and resumes from the server's offset;
the request ends ``received`` with segments whose hashes are the agent's capture hashes, and
an export of the range verifies with ``rtcc verify``. A declined request uploads nothing; an
auto-approved request for a range the agent never buffered ends ``failed`` with the reason.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from evidence import EVIDENCE
from evidence.store import AsyncEvidenceStore, EvidenceStore
from rtcc.access import CameraConsent
from rtcc.config import SharingLevel
from tests.agent.harness import (
    AgentProcess,
    Api,
    ServerHarness,
    account,
    agent_settings,
    bootstrap,
    enrollment_token,
    list_agents,
    wait_for,
)
from tests.fixtures.auth import bearer
from tests.fixtures.camsim import CamsimHandle

pytestmark = pytest.mark.slow

OWNER = "shop1"
CASE = "2024-0815"


def _index(state_dir: Path) -> sqlite3.Connection:
    """The agent's buffer index, read-only (the agent keeps writing it)."""
    conn = sqlite3.connect(f"file:{state_dir / 'buffer' / 'index.sqlite3'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


def _buffered_span(state_dir: Path, camera_id: str) -> tuple[float, float]:
    path = state_dir / "buffer" / "index.sqlite3"
    if not path.exists():
        return 0.0, 0.0
    with _index(state_dir) as conn:
        row = conn.execute("SELECT MIN(utc_start) AS a, MAX(utc_end) AS b FROM segments WHERE"
                           " camera_id = ? AND state = 'complete'", (camera_id,)).fetchone()
    if row is None or row["a"] is None:
        return 0.0, 0.0
    return float(row["a"]), float(row["b"])


async def _server_uploads(store: AsyncEvidenceStore, request_id: str) -> list[sqlite3.Row]:
    return await store.call(EvidenceStore.fetchall,
                            "SELECT * FROM uploads WHERE request_id = ? ORDER BY sequence",
                            (request_id,))


def _item(body: dict[str, Any]) -> dict[str, Any]:
    (item,) = body["cameras"]
    return dict(item)


async def test_approved_request_uploads_resumably_declined_uploads_nothing(
    tmp_path: Path, camsim: CamsimHandle, bootstrap_token: str
) -> None:
    server = ServerHarness(agent_settings(tmp_path))
    await server.start()
    state_dir = tmp_path / "agent-state"
    agent = AgentProcess(tmp_path / "agent.log")
    restarted = AgentProcess(tmp_path / "agent-2.log")
    args = ["--server", server.url, "--state-dir", str(state_dir), "--no-discovery",
            "--camera", camsim.url("open"), "--buffer-hours", "1",
            "--buffer-segment-seconds", "4", "--upload-kbps", "1200", "--backoff-max", "2"]
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(server.url, http)
            admin = bearer(bootstrap_token)
            owner = await bootstrap(api, admin, OWNER)
            detective = await account(api, admin, "detective", "investigator")
            await agent.start([*args, "--enroll", await enrollment_token(api, owner)], env={})

            async def camera_listed() -> str:
                agents = await list_agents(api, owner)
                cameras = agents[0]["cameras"] if agents and agents[0]["connected"] else []
                return str(cameras[0]["camera_id"]) if cameras else ""

            camera_id = await wait_for(camera_listed, 40, "the agent's camera")
            server.directory.consents[camera_id] = CameraConsent(
                camera_id, OWNER, SharingLevel.ON_REQUEST)
            assert server.app is not None
            store = server.app[EVIDENCE].store

            # ~20 s of buffering; the range asked for lies inside it.
            first, _ = await wait_for(
                lambda: (span := _buffered_span(state_dir, camera_id))[1] - span[0] >= 17
                and span, 60, "17 s of buffered footage")
            start, end = first + 6.0, first + 14.0  # inside a 4 s segment, not on its edge

            # Declined: nothing reaches the agent, nothing is uploaded.
            declined = await api.ok("POST", "/api/footage-requests", detective, 201, json={
                "cameras": [camera_id], "from": start, "to": end, "case": CASE,
                "reason": "burglary, rear door"})
            await api.ok("POST", f"/api/footage-requests/{declined['id']}/decline", owner,
                         json={"note": "not without a warrant"})

            # Approved: the agent is told at once and uploads (1.2 Mbit/s at most).
            asked = await api.ok("POST", "/api/footage-requests", detective, 201, json={
                "cameras": [camera_id], "from": start, "to": end, "case": CASE,
                "reason": "burglary, rear door"})
            rid = asked["id"]
            assert _item(asked)["status"] == "pending"
            approved = await api.ok("POST", f"/api/footage-requests/{rid}/approve", owner,
                                    json={})
            assert _item(approved)["status"] == "approved"

            async def mid_upload() -> bool:
                rows = await _server_uploads(store, rid)
                return any(r["state"] == "complete" for r in rows) and any(
                    0 < r["received"] < r["size"] for r in rows)

            assert agent.process is not None
            pid = agent.process.pid

            async def frozen_mid_upload() -> bool:
                if not await mid_upload():
                    return False
                os.killpg(pid, signal.SIGSTOP)  # hold it still while the server is looked at
                await asyncio.sleep(0.3)  # a request already on its way lands
                if await mid_upload():
                    return True
                os.killpg(pid, signal.SIGCONT)
                return False

            await wait_for(frozen_mid_upload, 40, "one segment received and the next one half")
            seen = await api.ok("GET", f"/api/footage-requests/{rid}", detective)
            assert seen["status"] == "receiving"
            assert _item(seen)["status"] == "receiving"
            os.killpg(pid, signal.SIGKILL)  # the owner's PC loses power mid-upload
            await agent.process.wait()
            partial = [r["received"] for r in await _server_uploads(store, rid)
                       if r["state"] != "complete"]
            assert partial
            assert partial[0] > 0

            await restarted.start(args, env={})  # enrolled already: no token
            done = await wait_for(
                lambda: _status(api, detective, rid, "received"), 60, "the upload to finish")
            assert _item(done)["uploaded_segments"] >= 3

            # The server's segments are the agent's, byte for byte: same capture hashes.
            stored = await store.call(EvidenceStore.fetchall,
                                      "SELECT * FROM segments WHERE request_id = ? ORDER BY"
                                      " utc_start", (rid,))
            with _index(state_dir) as conn:
                sent = conn.execute(
                    "SELECT p.sequence, s.sha256, s.bytes, s.utc_start, s.utc_end FROM"
                    " agent_footage_parts p JOIN segments s ON s.id = p.segment_id WHERE"
                    " p.request_id = ? ORDER BY p.sequence", (rid,)).fetchall()
                job = conn.execute("SELECT state FROM agent_footage_jobs WHERE request_id = ?",
                                   (rid,)).fetchone()
                hold = conn.execute("SELECT COUNT(*) FROM holds WHERE released_at IS NULL"
                                    ).fetchone()
            assert job["state"] == "complete"
            assert hold[0] == 0  # the range is no longer held on the agent
            assert [r["sha256"] for r in stored] == [r["sha256"] for r in sent]
            assert [r["bytes"] for r in stored] == [r["bytes"] for r in sent]
            assert [r["origin"] for r in stored] == ["agent"] * len(sent)
            assert sent[0]["utc_start"] <= start
            assert sent[-1]["utc_end"] >= end - 1.0
            assert len(await _server_uploads(store, rid)) == len(sent)  # nothing sent twice
            resumed = restarted.log()
            assert "resuming segment" in resumed, resumed[-3000:]
            assert "upload complete" in resumed

            # The investigator's export of that range verifies.
            export = await api.ok("POST", "/api/exports", detective, 201, json={
                "camera": camera_id, "from": start, "to": end, "case": CASE})
            assert set(export["segments"]) <= {int(r["id"]) for r in stored}
            package = tmp_path / "export.tar"
            package.write_bytes(await api.ok("GET", export["download"], detective))
            key = tmp_path / "key.pem"
            public = await api.ok("GET", "/api/evidence/public-key", detective)
            key.write_text(public["pem"])
            verify = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "server", "verify", str(package), "--key", str(key),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            output, _ = await asyncio.wait_for(verify.communicate(), 60)
            assert verify.returncode == 0, output.decode()

            # Auto-approved, but the agent never had that range: the request says why.
            await api.ok("PUT", "/api/footage-policy", owner,
                         json={"mode": "auto_approve", "max_hours": 1})
            old = await api.ok("POST", "/api/footage-requests", detective, 201, json={
                "cameras": [camera_id], "from": first - 7200, "to": first - 7190,
                "case": CASE, "reason": "earlier that night"})
            assert _item(old)["status"] == "approved"
            failed = await wait_for(lambda: _status(api, detective, old["id"], "failed"), 30,
                                    "the agent to report the failure")
            assert "holds no footage" in _item(failed)["failure"]

            # The declined request: never offered, nothing stored, never in the agent's log.
            assert await _server_uploads(store, declined["id"]) == []
            assert await store.call(EvidenceStore.fetchall,
                                    "SELECT id FROM segments WHERE request_id = ?",
                                    (declined["id"],)) == []
            listing = await api.ok("GET", f"/api/footage-requests/{declined['id']}", detective)
            assert listing["status"] == "declined"
            with _index(state_dir) as conn:
                assert conn.execute("SELECT * FROM agent_footage_jobs WHERE request_id = ?",
                                    (declined["id"],)).fetchall() == []
            for log_text in (agent.log(), restarted.log()):
                assert declined["id"] not in log_text
            assert rid in agent.log()  # it did hear of the approved one
    finally:
        await restarted.stop()
        await agent.stop()
        await server.stop()


async def _status(api: Api, who: dict[str, str], request_id: str, wanted: str
                  ) -> dict[str, Any] | None:
    body: dict[str, Any] = await api.ok("GET", f"/api/footage-requests/{request_id}", who)
    return body if body["status"] == wanted else None
