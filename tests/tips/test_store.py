"""The tip store on both engines (a real SQLite file, a real PostgreSQL): unfinished uploads
expire and leave nothing, plain work files left by a crash are gone when the store opens again,
and a tip number already taken is drawn again."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from rtcc.config import DatabaseConfig
from rtcc.db import Database
from tips.store import TipStore


async def test_unfinished_uploads_expire_and_crash_leftovers_go(tmp_path: Path,
                                                                database_url: str) -> None:
    database = Database(DatabaseConfig(url=SecretStr(database_url), migrate_on_start=True),
                        tmp_path)
    store = TipStore(database, tmp_path)
    await store.open()
    try:
        tip = await store.create_tip(created=100.0, what="a tip for the store test", place="",
                                     lat=None, lon=None, happened="", contact_sealed="",
                                     passphrase_hash="$argon2id$stand-in")
        media = await store.create_media(tip.id, 100.0, 10_000, "wrapped", max_files=1)
        assert media is not None
        assert await store.create_media(tip.id, 100.0, 10, "wrapped", max_files=1) is None
        media = await store.append_chunk(media.id, 0, b"\xff\xd8\xff" + b"\x00" * 997,
                                         b"k" * 32, "image", "jpeg")
        assert media.received == 1000
        assert store.original_path(media.id).exists()
        assert await store.expire_uploads(50.0, "too old") == 0
        assert await store.expire_uploads(200.0, "too old") == 1
        expired = await store.media(media.id)
        assert expired is not None
        assert (expired.status, expired.note) == ("refused", "too old")
        assert not store.original_path(media.id).exists()
        store.work_path(media.id).write_bytes(b"plain bytes of a photo")
    finally:
        await store.aclose()
    reopened = TipStore(database, tmp_path)
    await reopened.open()
    try:
        assert not reopened.work_path(media.id).exists()
        assert (await reopened.tip(tip.id)).number == tip.number
        # A number already taken is drawn again instead of failing the tipster.
        numbers = {(await reopened.create_tip(
            created=101.0, what="another tip", place="", lat=None, lon=None, happened="",
            contact_sealed="", passphrase_hash="$argon2id$stand-in")).number for _ in range(20)}
        assert len(numbers) == 20
        assert tip.number not in numbers
    finally:
        await reopened.aclose()
        database.close()
