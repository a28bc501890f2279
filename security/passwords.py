"""Password hashing with Argon2id (argon2-cffi defaults: t=3, m=64 MiB, p=4) and the password
rules. Hashing runs on the application's bounded worker pool, so the event loop never waits on it
and a flood of logins cannot take every core from the video."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from rtcc.workers import WorkerPool

T = TypeVar("T")

MIN_LENGTH = 12
MAX_LENGTH = 1024


def password_problem(password: str, username: str) -> str | None:
    """Why a new password is refused, or None when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"the password must have at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"the password must have at most {MAX_LENGTH} characters"
    if password.strip().lower() == username.strip().lower():
        return "the password must not be the user name"
    return None


class Passwords:
    def __init__(self, hasher: PasswordHasher | None = None,
                 workers: WorkerPool | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._workers = workers
        self._dummy: str | None = None
        self._dummy_lock = asyncio.Lock()

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True

    async def _off_loop(self, function: Callable[..., T], *args: object) -> T:
        if self._workers is not None:
            return await self._workers.run(function, *args)
        # Without a pool (command line, stand-alone tools) there is no video loop to protect.
        return await asyncio.to_thread(function, *args)

    async def hash_async(self, password: str) -> str:
        return await self._off_loop(self.hash, password)

    async def verify_async(self, stored: str | None, password: str) -> bool:
        """Verify; with no stored hash, spend the same time and fail (no user enumeration)."""
        if stored is None:
            async with self._dummy_lock:  # a burst of unknown names hashes the dummy once
                if self._dummy is None:
                    self._dummy = await self.hash_async("not a password of anyone")
            await self._off_loop(self.verify, self._dummy, password)
            return False
        return await self._off_loop(self.verify, stored, password)
