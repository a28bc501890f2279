"""The demo's mail: a local SMTP server (aiosmtpd) whose mailboxes are folders, and the soft
targets the demo city's CAD incidents warn.

Every mail the notifications outbox sends lands in ``DATA_DIR/demo-mail/<address>/`` as an
``.eml`` file (open it with any mail reader or a text editor); ``index.txt`` lists them.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import threading
import time
from collections.abc import Iterator
from email.policy import default
from pathlib import Path
from typing import Any

from rtcc.config import Settings
from rtcc.db import Database

DEMO_FACILITIES: tuple[dict[str, Any], ...] = (
    {"id": "springfield-high", "name": "Springfield High School", "category": "school",
     "lat": 39.8003, "lon": -89.6468, "address": "101 S Grand Ave",
     "contacts": [("Front office", "office@springfield-high.example")]},
    {"id": "st-johns-hospital", "name": "St. John's Hospital", "category": "hospital",
     "lat": 39.8035, "lon": -89.6420, "address": "800 E Carpenter St",
     "contacts": [("Security desk", "security@stjohns.example")]},
    {"id": "first-church", "name": "First Presbyterian Church", "category": "worship",
     "lat": 39.7990, "lon": -89.6500, "address": "321 S 7th St",
     "contacts": [("Pastor", "pastor@firstchurch.example")]},
)


class _Maildirs:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: ARG002 -- aiosmtpd's hook
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        await asyncio.to_thread(self._write, list(envelope.rcpt_tos), content)
        return "250 OK"

    def _write(self, recipients: list[str], content: bytes) -> None:
        subject = str(email.message_from_bytes(content, policy=default)["Subject"] or "")
        with self._lock:
            self._count += 1
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for address in recipients:
                box = self.root / address.replace("/", "_")
                box.mkdir(parents=True, exist_ok=True)
                name = f"{stamp}-{self._count:04d}.eml"
                (box / name).write_bytes(content)
                with (self.root / "index.txt").open("a", encoding="utf-8") as index:
                    index.write(f"{stamp}  {address}  {subject}  ({address}/{name})\n")


@contextlib.contextmanager
def mail_sink(settings: Settings) -> Iterator[Path | None]:
    """The local SMTP server on ``notify.smtp_host:smtp_port``; yields the mailboxes' folder,
    or None when aiosmtpd is not installed (``pip install -e .[test]``)."""
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        yield None
        return
    root = settings.data_dir / "demo-mail"
    root.mkdir(parents=True, exist_ok=True)
    controller = Controller(_Maildirs(root), hostname=settings.notify.smtp_host or "127.0.0.1",
                            port=settings.notify.smtp_port)
    controller.start()
    try:
        yield root
    finally:
        controller.stop()


async def seed_facilities(settings: Settings) -> int:
    """Registers the demo city's soft targets (once); returns how many are registered."""
    from notify.store import Contact, Facility, NotifyStore

    database = Database.from_settings(settings)
    store = await NotifyStore.open(database)
    try:
        for f in DEMO_FACILITIES:
            await store.put_facility(Facility(
                f["id"], f["name"], f["category"], f["lat"], f["lon"], address=f["address"],
                contacts=tuple(Contact(0, f["id"], name, "email", address)
                               for name, address in f["contacts"])))
        return len(await store.facilities())
    finally:
        await store.aclose()
        await asyncio.to_thread(database.close)
