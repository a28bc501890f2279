"""Password hashing with Argon2id (argon2-cffi defaults: t=3, m=64 MiB, p=4) and the password
rules. Hashing runs in a worker thread so the event loop never waits on it."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

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
    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._dummy: str | None = None

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

    async def hash_async(self, password: str) -> str:
        return await asyncio.to_thread(self.hash, password)

    async def verify_async(self, stored: str | None, password: str) -> bool:
        """Verify; with no stored hash, spend the same time and fail (no user enumeration)."""
        if stored is None:
            if self._dummy is None:
                self._dummy = await self.hash_async("not a password of anyone")
            await asyncio.to_thread(self.verify, self._dummy, password)
            return False
        return await asyncio.to_thread(self.verify, stored, password)
