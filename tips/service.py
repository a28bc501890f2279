"""The tip line's work between the routes and the store: passphrases, rate limits, uploads
and the analysts' copies."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from rtcc.access import SecretBox
from rtcc.workers import WorkerPool
from tips import vault
from tips.checks import RepeatGuard
from tips.media import MediaRefused, TipLimits, image_copy, video_copy
from tips.ratelimit import KeyedBuckets
from tips.store import Media, Tip, TipStore

log = logging.getLogger(__name__)

_PASS_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # noqa: S105 -- an alphabet, not a secret


def new_passphrase() -> str:
    """Five groups of four characters: 100 random bits, easy to copy onto paper."""
    chars = "".join(secrets.choice(_PASS_ALPHABET) for _ in range(20))
    return "-".join(chars[i:i + 4] for i in range(0, 20, 4))


@dataclass(frozen=True, slots=True)
class FloodLimits:
    """What one caller may do in one rate window (``tips.ratelimit``)."""

    tips: int = 5
    messages: int = 20
    passphrase_tries: int = 20
    tries_per_tip: int = 10
    uploads: int = 40
    upload_bytes: int = 2 * 1024**3


@dataclass
class TipLine:
    store: TipStore
    box: SecretBox
    workers: WorkerPool
    clock: Callable[[], float]
    limits: TipLimits = field(default_factory=TipLimits)
    floods: FloodLimits = field(default_factory=FloodLimits)
    hasher: PasswordHasher = field(default_factory=PasswordHasher)
    buckets: KeyedBuckets = field(init=False)
    repeats: RepeatGuard = field(init=False)
    _finishing: dict[str, asyncio.Lock] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.buckets = KeyedBuckets(self.clock)
        self.repeats = RepeatGuard(self.clock)

    def now_minute(self) -> float:
        """Tips and messages carry the minute they came, not the second: a coarse time is
        enough to work with and harder to match against other records of the same moment."""
        return float(int(self.clock()) // 60 * 60)

    async def hash_passphrase(self, passphrase: str) -> str:
        return await self.workers.run(self.hasher.hash, passphrase)

    async def check_passphrase(self, tip: Tip, passphrase: str) -> bool:
        def verify() -> bool:
            try:
                return self.hasher.verify(tip.passphrase_hash, passphrase)
            except (VerificationError, InvalidHashError):
                return False

        return await self.workers.run(verify)

    def seal_contact(self, contact: str) -> str:
        return self.box.encrypt(contact) if contact else ""

    def open_contact(self, sealed: str) -> str:
        return self.box.decrypt(sealed) if sealed else ""

    def file_key(self, media: Media) -> bytes:
        return vault.unwrap_key(self.box, media.wrapped_key)

    async def finish(self, media: Media) -> Media:
        """Make the analysts' copy of a fully received upload (once, whoever asks first)."""
        lock = self._finishing.setdefault(media.id, asyncio.Lock())
        try:
            async with lock:
                current = await self.store.media(media.id)
                if current is None or current.status != "receiving" \
                        or current.received < current.declared_size:
                    return current or media
                return await self._make_copy(current)
        finally:
            if not lock.locked():
                self._finishing.pop(media.id, None)

    async def _make_copy(self, media: Media) -> Media:
        work = await self.store.decrypt_to_work_file(media, self.file_key(media))
        target = self.store.view_path(media.id)
        try:
            if media.kind == "image":
                copy = await self.workers.run(image_copy, work, target, self.limits)
            else:
                copy = await self.workers.run(video_copy, work, target, self.limits)
        except MediaRefused as exc:
            log.info("tip file %s refused: %s", media.id, exc)
            return await self.store.finish_media(media.id, status="refused", note=str(exc))
        finally:
            await self.store.drop_work_file(media.id)
        return await self.store.finish_media(media.id, status="ready", view_mime=copy.mime,
                                             width=copy.width, height=copy.height,
                                             seconds=copy.seconds)
