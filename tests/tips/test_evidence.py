"""A tip's photo promoted to evidence: the original, hashed and held, exported and verified."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import aiohttp

from evidence import EVIDENCE
from evidence.items import custody
from evidence.store import EvidenceStore
from recording.segments import contained
from tests.tips.conftest import TipServer
from tests.tips.helpers import call, jpeg_with_gps, send_tip, upload


async def test_promote_photo_to_evidence(tip_server: TipServer, tipster: aiohttp.ClientSession,
                                         tmp_path: Path) -> None:
    server = tip_server
    base = server.base
    photo = jpeg_with_gps()
    tip = await send_tip(tipster, base)
    await upload(tipster, base, tip, photo)
    session = server.client.session
    queue = await call(session, "GET", f"{base}/api/tips", 200, headers=server.analyst)
    tip_id = next(t["id"] for t in queue["tips"] if t["number"] == tip["number"])
    detail = await call(session, "GET", f"{base}/api/tips/{tip_id}", 200,
                        headers=server.analyst)
    media_id = detail["media"][0]["id"]
    url = f"{base}/api/tips/{tip_id}/media/{media_id}/evidence"
    body = {"case": "2026-000123", "reason": "photo of the van"}

    # Analysts may not; an investigator may, once.
    await call(session, "POST", url, 403, json=body, headers=server.analyst)
    promoted = await call(session, "POST", url, 201, json=body, headers=server.investigator)
    await call(session, "POST", url, 409, json=body, headers=server.investigator)
    assert promoted["sha256"] == hashlib.sha256(photo).hexdigest()  # the original, not the copy
    item_id = promoted["evidence_id"]
    detail = await call(session, "GET", f"{base}/api/tips/{tip_id}", 200,
                        headers=server.analyst)
    assert detail["media"][0]["evidence_id"] == item_id

    # Stored as sent, under a legal hold that retention honours, with its custody.
    core = server.client.app[EVIDENCE]
    stored = contained(core.root, f"items/{item_id}/original.jpeg")
    assert stored.read_bytes() == photo
    assert await core.store.call(EvidenceStore.is_held, item_id, 0.0, 1e12)
    assert await core.store.call(EvidenceStore.evictable, item_id, 1e18) == []
    assert item_id not in await core.store.call(EvidenceStore.cameras_with_segments)
    steps = [entry["action"] for entry in await core.store.call(custody, item_id)]
    assert steps == ["received", "hashed and held"]

    # ``rtcc export --item`` packages it; ``rtcc verify`` checks the package against the
    # server's published key, and on the server against the stored item too.
    config = tmp_path / "server.yaml"
    config.write_text(f"data_dir: {server.settings.data_dir}\n")
    package = tmp_path / "item.tar"
    key_file = tmp_path / "public.pem"
    key_file.write_bytes(core.key.public_pem())

    def rtcc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "server", *args], capture_output=True,
                              text=True, timeout=120, check=False)

    made = rtcc("export", "--config", str(config), "--item", item_id, "--out", str(package))
    assert made.returncode == 0, made.stdout + made.stderr
    assert f"package: {package}" in made.stdout
    for how in (("--key", str(key_file)), ("--config", str(config))):
        done = rtcc("verify", str(package), *how)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "RESULT: VERIFIED" in done.stdout
        assert promoted["sha256"] in done.stdout
    assert "OK   item: matches the item stored on this server" in done.stdout
    assert [entry["action"] for entry in await core.store.call(custody, item_id)] == [
        "received", "hashed and held", "exported"]

    # The promotion is in the audit log, with the item and its hash.
    audit = await call(session, "GET", f"{base}/api/audit?limit=500", 200, headers=server.admin)
    entries = [e for e in audit["entries"] if e.get("action") == "tip.evidence"]
    assert any((e.get("details") or {}).get("evidence_id") == item_id for e in entries), entries
    assert any(e.get("action") == "evidence.item.add" and e.get("target") == f"item:{item_id}"
               for e in audit["entries"])
