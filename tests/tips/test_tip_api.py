"""The tip line over HTTP: a tip with a photo and a video, the copies analysts see, the
encrypted originals, a dropped upload, replies, and nothing that names the tipster."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from tests.tips.conftest import TIPSTER_ADDRESS, TipServer, session_from
from tests.tips.helpers import (
    CAMERA_MAKE,
    TIPSTER_UA,
    VIDEO_LOCATION,
    call,
    jpeg_with_gps,
    mp4_with_metadata,
    probe_tags,
    send_tip,
    upload,
)
from tips.keys import TIP_LINE


async def _detail(server: TipServer, number: str) -> dict[str, Any]:
    queue = await call(server.client.session, "GET", f"{server.base}/api/tips", 200,
                       headers=server.analyst)
    tip_id = next(t["id"] for t in queue["tips"] if t["number"] == number)
    found: dict[str, Any] = await call(server.client.session, "GET",
                                       f"{server.base}/api/tips/{tip_id}", 200,
                                       headers=server.analyst)
    return found


async def _drop_mid_chunk(base: str, upload_id: str, offset: int, chunk: bytes) -> None:
    """Send a chunk's headers and half its body from the tipster's address, then cut the
    connection (a phone losing its signal)."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port),
                                                   local_addr=(TIPSTER_ADDRESS, 0))
    writer.write((f"PUT /tips/api/uploads/{upload_id}?offset={offset} HTTP/1.1\r\n"
                  f"Host: {host}:{port}\r\nOrigin: {base}\r\n"
                  f"Content-Length: {len(chunk)}\r\n\r\n").encode() + chunk[:len(chunk) // 2])
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    del reader


async def test_tip_with_photo_and_video(tip_server: TipServer, tipster: aiohttp.ClientSession,
                                        tmp_path: Path, caplog: pytest.LogCaptureFixture
                                        ) -> None:
    caplog.set_level(logging.DEBUG)
    server, base = tip_server, tip_server.base
    headers = {"User-Agent": TIPSTER_UA, "Origin": base}
    tip = await send_tip(tipster, base, contact="call 555-0100 after 6")
    assert tip["number"].startswith("T-")
    assert len(tip["passphrase"]) == 24

    photo = jpeg_with_gps()
    shown = await upload(tipster, base, tip, photo, chunk=1000)
    assert shown["state"] == "ready", shown

    # A video, with its second chunk cut mid-way: the server keeps what was whole and the
    # upload goes on from there.
    video = mp4_with_metadata(tmp_path)
    started = await call(tipster, "POST", f"{base}/tips/api/uploads", 201, headers=headers,
                         json={"number": tip["number"], "passphrase": tip["passphrase"],
                               "size": len(video)})
    upload_id = started["upload"]["id"]
    chunk = 8192
    await call(tipster, "PUT", f"{base}/tips/api/uploads/{upload_id}?offset=0", 200,
               data=video[:chunk], headers=headers)
    await _drop_mid_chunk(base, upload_id, chunk, video[chunk:2 * chunk])
    state = await call(tipster, "GET", f"{base}/tips/api/uploads/{upload_id}", 200,
                       headers=headers)
    assert state["received"] == chunk
    assert state["state"] == "receiving"
    stale = await call(tipster, "PUT", f"{base}/tips/api/uploads/{upload_id}?offset=0", 409,
                       data=video[:chunk], headers=headers)
    assert stale["received"] == chunk
    offset = chunk
    while offset < len(video):
        answer = await call(tipster, "PUT",
                            f"{base}/tips/api/uploads/{upload_id}?offset={offset}", 200,
                            data=video[offset:offset + 65536], headers=headers)
        offset = answer["received"]
    assert answer["state"] == "ready", answer

    # The analyst sees copies without location or device metadata; the photo stands upright.
    detail = await _detail(server, tip["number"])
    assert detail["contact"] == "call 555-0100 after 6"
    media = {m["kind"]: m for m in detail["media"]}
    session = server.client.session
    copy_url = f"{base}/api/tips/{detail['id']}/media"
    async with session.get(f"{copy_url}/{media['image']['id']}", headers=server.analyst) as got:
        assert got.status == 200
        assert got.content_type == "image/jpeg"
        assert got.headers["X-Content-Type-Options"] == "nosniff"
        copy = await got.read()
    picture = Image.open(io.BytesIO(copy))
    assert picture.size == (32, 64)  # turned as the EXIF orientation said
    assert not picture.getexif()
    assert CAMERA_MAKE.encode() not in copy
    async with session.get(f"{copy_url}/{media['video']['id']}", headers=server.analyst) as got:
        assert got.status == 200
        assert got.content_type == "video/mp4"
        video_copy = await got.read()
    copy_path = tmp_path / "copy.mp4"
    copy_path.write_bytes(video_copy)
    tags = probe_tags(copy_path)
    assert "creation_time" not in tags, tags
    assert "location" not in tags, tags
    assert b"loci" not in video_copy
    assert VIDEO_LOCATION.encode() not in video_copy

    # Investigators download the originals, decrypted, byte for byte; analysts may not.
    for kind, sent in (("image", photo), ("video", video)):
        url = f"{copy_url}/{media[kind]['id']}/original"
        async with session.get(url, headers=server.investigator) as got:
            assert got.status == 200
            assert got.headers["Content-Disposition"].startswith("attachment")
            assert got.content_type == "application/octet-stream"
            assert await got.read() == sent
        async with session.get(url, headers=server.analyst) as got:
            assert got.status == 403
    # At rest the originals are sealed: the GPS-carrying bytes are nowhere on disk in clear.
    files = server.settings.data_dir / "tips"
    for path in files.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600
        assert photo[:2000] not in path.read_bytes()  # the EXIF, GPS included
    assert (files.stat().st_mode & 0o777) == 0o700

    # Every view of the tip is in the audit log.
    audit = await call(session, "GET", f"{base}/api/audit?limit=500", 200, headers=server.admin)
    actions = [e["action"] for e in audit["entries"] if e.get("target") == tip["number"]]
    assert {"tip.view", "tip.media.view", "tip.original.download"} <= set(actions)

    # The tipster's address and browser appear in no file and no log line.
    _assert_nowhere(server.settings.data_dir, caplog, TIPSTER_ADDRESS.encode(),
                    TIPSTER_UA.encode())


def _assert_nowhere(data_dir: Path, caplog: pytest.LogCaptureFixture, *needles: bytes) -> None:
    text = "\n".join(record.getMessage() + repr(record.args) for record in caplog.records)
    for needle in needles:
        assert needle.decode() not in text
        for path in data_dir.rglob("*"):
            if path.is_file():
                assert needle not in path.read_bytes(), f"{needle!r} found in {path}"


async def test_replies_reach_the_tipster(tip_server: TipServer,
                                         tipster: aiohttp.ClientSession) -> None:
    server, base = tip_server, tip_server.base
    tip = await send_tip(tipster, base)
    detail = await _detail(server, tip["number"])
    await call(server.client.session, "POST", f"{base}/api/tips/{detail['id']}/messages", 201,
               json={"body": "Thank you. What colour was the driver's jacket?"},
               headers=server.analyst)
    creds = {"number": tip["number"].lower(), "passphrase": tip["passphrase"]}
    thread = await call(tipster, "POST", f"{base}/tips/api/follow-up", 200, json=creds,
                        headers={"Origin": base})
    assert [m["body"] for m in thread["messages"]] == [
        "Thank you. What colour was the driver's jacket?"]
    await call(tipster, "POST", f"{base}/tips/api/messages", 201,
               json={**creds, "body": "Orange, with a reflective stripe"},
               headers={"Origin": base})
    detail = await _detail(server, tip["number"])
    assert [m["from"] for m in detail["messages"]] == ["staff", "tipster"]
    assert detail["status"] == "in_review"
    wrong = await call(tipster, "POST", f"{base}/tips/api/follow-up", 403,
                       json={**creds, "passphrase": "aaaa-bbbb-cccc-dddd-eeee"},
                       headers={"Origin": base})
    assert "passphrase is wrong" in wrong["error"]
    # Only an argon2 hash of the passphrase is stored.
    stored = b"".join(path.read_bytes()  # the database and its write-ahead log
                      for path in server.settings.data_dir.glob("tips.sqlite3*"))
    assert tip["passphrase"].encode() not in stored
    assert b"$argon2" in stored


async def test_floods_and_junk_are_refused_with_reasons(tip_server: TipServer,
                                                        tipster: aiohttp.ClientSession) -> None:
    base = tip_server.base
    origin = {"Origin": base}
    tips = [await send_tip(tipster, base, what=f"Tip number {i} about a parked car")
            for i in range(5)]
    flood = await call(tipster, "POST", f"{base}/tips/api/tips", 429, headers=origin,
                       json={"what": "One more tip about the parked car"})
    assert "too many tips" in flood["error"]
    async with session_from("127.0.0.8") as other:  # another tipster is not held up
        await send_tip(other, base, what="Someone else saw a fire in the alley")

    spam = await call(tipster, "POST", f"{base}/tips/api/tips", 400, headers=origin, json={
        "what": "buy http://a.example http://b.example http://c.example now"})
    assert "links" in spam["error"]
    assert spam["field"] == "what"
    short = await call(tipster, "POST", f"{base}/tips/api/tips", 400, headers=origin,
                       json={"what": "hi"})
    assert short["field"] == "what"

    creds = {"number": tips[0]["number"], "passphrase": tips[0]["passphrase"]}
    huge = await call(tipster, "POST", f"{base}/tips/api/uploads", 413, headers=origin,
                      json={**creds, "size": 9 * 1024**3})
    assert "MiB" in huge["error"]
    started = await call(tipster, "POST", f"{base}/tips/api/uploads", 201, headers=origin,
                         json={**creds, "size": 100})
    upload_id = started["upload"]["id"]
    refused = await call(tipster, "PUT", f"{base}/tips/api/uploads/{upload_id}?offset=0", 415,
                         headers=origin, data=b"MZ\x90\x00" + b"\x00" * 96)
    assert "photos" in refused["error"]
    big_photo = await call(tipster, "POST", f"{base}/tips/api/uploads", 201, headers=origin,
                           json={**creds, "size": 3 * 1024**2})
    too_big = await call(tipster, "PUT",
                         f"{base}/tips/api/uploads/{big_photo['upload']['id']}?offset=0", 413,
                         headers=origin, data=jpeg_with_gps())
    assert "image" in too_big["error"]
    # One address uploading without end is stopped; another is not.
    flood_size = 1_000_000
    flooding = await call(tipster, "POST", f"{base}/tips/api/uploads", 201, headers=origin,
                          json={**creds, "size": flood_size})
    video = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * (flood_size - 12)
    offset, status = 0, 200
    while status == 200:
        async with tipster.put(f"{base}/tips/api/uploads/{flooding['upload']['id']}"
                               f"?offset={offset}", data=video[offset:offset + 65536],
                               headers=origin) as put:
            status = put.status
            answer = await put.json()
        offset = answer.get("received", offset)
        assert offset < flood_size
    assert status == 429
    assert "too many uploaded bytes" in answer["error"]
    async with session_from("127.0.0.8") as other:
        other_tip = await send_tip(other, base, what="A second tipster with a photo to send")
        sent = await upload(other, base, other_tip, jpeg_with_gps())
        assert sent["state"] == "ready"
    # A cross-site post is refused without naming who sent it.
    await call(tipster, "POST", f"{base}/tips/api/tips", 403,
               headers={"Origin": "https://elsewhere.example"}, json={"what": "x" * 20})


async def test_queue_status_and_incident_link(tip_server: TipServer,
                                              tipster: aiohttp.ClientSession) -> None:
    server, base = tip_server, tip_server.base
    session = server.client.session
    tip = await send_tip(tipster, base, lat=39.8, lon=-89.6)
    detail = await _detail(server, tip["number"])
    assert (detail["lat"], detail["lon"]) == (39.8, -89.6)
    url = f"{base}/api/tips/{detail['id']}"
    changed = await call(session, "PATCH", url, 200, json={"status": "in_review"},
                         headers=server.analyst)
    assert changed["status"] == "in_review"
    await call(session, "PATCH", url, 400, json={"status": "solved"}, headers=server.analyst)

    opened = await call(session, "POST", f"{base}/api/incidents", 201,
                        json={"title": "shop break-in", "cameras": []}, headers=server.analyst)
    listed = await call(session, "GET", f"{base}/api/tips/incidents", 200,
                        headers=server.analyst)
    assert opened["id"] in [i["id"] for i in listed["incidents"]]
    await call(session, "POST", f"{url}/incident", 400, json={"incident_id": "no-such"},
               headers=server.analyst)
    linked = await call(session, "POST", f"{url}/incident", 200,
                        json={"incident_id": opened["id"]}, headers=server.analyst)
    assert linked["status"] == "linked"
    assert linked["incident_id"] == opened["id"]
    queue = await call(session, "GET", f"{base}/api/tips?status=linked", 200,
                       headers=server.analyst)
    assert [t["number"] for t in queue["tips"]] == [tip["number"]]

    # The queue is for staff only; the public tip page and the console page carry no data.
    await call(session, "GET", f"{base}/api/tips", 401)
    async with tipster.get(f"{base}/tips/") as page:
        assert page.status == 200
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        assert "Set-Cookie" not in page.headers
    async with session.get(f"{base}/console/tips/") as page:
        assert page.status == 200
    # Without tiles of the department's own, the tip page offers no map (nothing third-party).
    tiles = await call(tipster, "GET", f"{base}/tips/api/map", 200)
    assert tiles["tile_url"] is None
    async with tipster.get(f"{base}/tips/vendor/leaflet/leaflet.js") as script:
        assert script.status == 200


async def test_a_failure_on_the_tip_line_names_no_caller(
        tip_server: TipServer, tipster: aiohttp.ClientSession,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    line = tip_server.client.app[TIP_LINE]
    await line.store.aclose()  # the store goes away under the handlers
    failed = await call(tipster, "POST", f"{tip_server.base}/tips/api/tips", 500,
                        headers={"Origin": tip_server.base, "User-Agent": TIPSTER_UA},
                        json={"what": "A tip that meets a closed store"})
    assert "try again" in failed["error"]
    assert any("POST /tips/api/tips failed" in r.getMessage() for r in caplog.records)
    _assert_nowhere(tip_server.settings.data_dir, caplog, TIPSTER_ADDRESS.encode(),
                    TIPSTER_UA.encode())
