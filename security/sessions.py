"""Browser sessions (cookie) and API tokens (bearer). Only SHA-256 hashes of either are stored.

Sessions lock after ``security.session_idle_minutes`` without a request (CJIS AC-11) and end
after 12 hours whatever happens. The cookie is HttpOnly, SameSite=Strict, and Secure under TLS.

The public methods are async: their statements (the ``_``-prefixed methods) run on the security
store's thread.
"""

from __future__ import annotations

import collections
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from rtcc.db import Row
from rtcc.errors import StoreUnavailable
from rtcc.policy import Role
from rtcc.principal import Principal
from security.store import Clock, SecurityStore, SecurityTables

COOKIE = "rtcc_session"
ABSOLUTE_SECONDS = 12 * 3600
TOUCH_EVERY = 15.0
"""Seconds between writes of a session's last-seen time (not every request needs a write)."""
TOKEN_PREFIX = "rtcc_"  # noqa: S105 (a prefix, not a secret)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def set_session_cookie(response: web.StreamResponse, value: str, *, secure: bool) -> None:
    response.set_cookie(COOKIE, value, path="/", httponly=True, samesite="Strict", secure=secure)


def clear_session_cookie(response: web.StreamResponse, *, secure: bool) -> None:
    response.del_cookie(COOKIE, path="/", httponly=True, samesite="Strict", secure=secure)


def _principal(row: Row, auth: str, **extra: Any) -> Principal:
    return Principal(
        user_id=int(row["user_id"]), username=row["username"], role=Role(row["role"]),
        owner_id=row["owner_id"], auth="session" if auth == "session" else "token", **extra,
    )


STALE_IF_UNAVAILABLE_S = 60.0
"""How long a sign-in checked before the database stopped answering is still honoured: staff
keep their dashboards and metrics through a short outage, while anything that needs the
database (opening a view, an audit entry) fails closed by itself. No revocation can be written
while the database is down, so none is missed."""


class RecentSignIns:
    """The last successful answers of a credential lookup, used only while the store is down."""

    def __init__(self, capacity: int = 4096) -> None:
        self._entries: collections.OrderedDict[str, tuple[Principal, float]] = (
            collections.OrderedDict())
        self._capacity = capacity

    def remember(self, key: str, principal: Principal | None) -> None:
        if principal is None:
            self._entries.pop(key, None)
            return
        self._entries[key] = (principal, time.monotonic())
        self._entries.move_to_end(key)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def forget_all(self) -> None:
        """After a sign-out or a revocation: nothing older may stand in for the store."""
        self._entries.clear()

    def recall(self, key: str) -> Principal | None:
        entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry[1] > STALE_IF_UNAVAILABLE_S:
            return None
        return entry[0]

    async def resolve(self, key: str, lookup: Any) -> Principal | None:
        """``await lookup()``, remembered; when the store is unavailable, a recent answer."""
        try:
            principal: Principal | None = await lookup()
        except StoreUnavailable:
            recalled = self.recall(key)
            if recalled is None:
                raise
            return recalled
        self.remember(key, principal)
        return principal


class Sessions:
    def __init__(self, store: SecurityStore, clock: Clock, idle_seconds: float) -> None:
        self._store = store
        self._db: SecurityTables = store.tables
        self._clock = clock
        self.idle_seconds = idle_seconds
        self._recent = RecentSignIns()

    async def create(self, user_id: int, source: str) -> tuple[str, str]:
        """A new session: (cookie value, CSRF token)."""
        return await self._store.run(self._create, user_id, source)

    async def resolve(self, value: str) -> Principal | None:
        """The session's user, or None when unknown, idle too long, too old or disabled."""
        if not value or len(value) > 200:
            return None
        return await self._recent.resolve(
            digest(value), lambda: self._store.run(self._resolve, value))

    async def end(self, session_hash: str) -> None:
        self._recent.forget_all()
        await self._store.run(self._end, session_hash)

    async def end_all(self, user_id: int) -> None:
        self._recent.forget_all()
        await self._store.run(self._end_all, user_id)

    async def purge(self) -> int:
        return await self._store.run(self._purge)

    def _create(self, user_id: int, source: str) -> tuple[str, str]:
        value = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        now = self._clock()
        self._db.conn.execute(
            "INSERT INTO sessions (id_hash, user_id, csrf_token, created, last_seen, source)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (digest(value), user_id, csrf, now, now, source),
        )
        return value, csrf

    def _resolve(self, value: str) -> Principal | None:
        key = digest(value)
        row = self._db.conn.execute(
            "SELECT s.user_id, s.csrf_token, s.created, s.last_seen, u.username, u.role,"
            " u.owner_id, u.disabled FROM sessions s JOIN users u ON u.id = s.user_id"
            " WHERE s.id_hash = ?",
            (key,),
        ).fetchone()
        if row is None:
            return None
        now = self._clock()
        if (row["disabled"] or now - float(row["last_seen"]) > self.idle_seconds
                or now - float(row["created"]) > ABSOLUTE_SECONDS):
            self._end(key)
            return None
        if now - float(row["last_seen"]) >= TOUCH_EVERY:
            self._db.conn.execute(
                "UPDATE sessions SET last_seen = ? WHERE id_hash = ?", (now, key)
            )
        return _principal(row, "session", session_hash=key, csrf_token=row["csrf_token"])

    def _end(self, session_hash: str) -> None:
        self._db.conn.execute("DELETE FROM sessions WHERE id_hash = ?", (session_hash,))

    def _end_all(self, user_id: int) -> None:
        self._db.conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))

    def _purge(self) -> int:
        now = self._clock()
        cursor = self._db.conn.execute(
            "DELETE FROM sessions WHERE last_seen < ? OR created < ?",
            (now - self.idle_seconds, now - ABSOLUTE_SECONDS),
        )
        return cursor.rowcount


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    user_id: int
    name: str
    kind: str
    created: float
    expires: float | None
    last_used: float | None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "kind": self.kind, "created": self.created,
                "expires": self.expires, "last_used": self.last_used}


class Tokens:
    def __init__(self, store: SecurityStore, clock: Clock) -> None:
        self._store = store
        self._db: SecurityTables = store.tables
        self._clock = clock
        self._recent = RecentSignIns()

    async def create(self, user_id: int, name: str, *, kind: str = "api",
                     secret: str | None = None, expires: float | None = None) -> tuple[int, str]:
        """Store a token's hash; returns (id, token). The token is never readable again."""
        return await self._store.run(self._create, user_id, name, kind, secret, expires)

    async def resolve(self, token: str) -> Principal | None:
        if not token or len(token) > 500:
            return None
        return await self._recent.resolve(
            digest(token), lambda: self._store.run(self._resolve, token))

    async def of_user(self, user_id: int) -> list[TokenInfo]:
        return await self._store.run(self._of_user, user_id)

    async def revoke(self, token_id: int, user_id: int | None = None) -> bool:
        """Revoke one token (of that user, when given); False when there was none."""
        self._recent.forget_all()
        return await self._store.run(self._revoke, token_id, user_id)

    async def active_of_kind(self, kind: str) -> list[TokenInfo]:
        return await self._store.run(self._active_of_kind, kind)

    def _create(self, user_id: int, name: str, kind: str, secret: str | None,
                expires: float | None) -> tuple[int, str]:
        token = secret if secret is not None else TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = self._db.conn.scalar(
            "INSERT INTO api_tokens (token_hash, user_id, name, kind, created, expires)"
            " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (digest(token), user_id, name, kind, self._clock(), expires),
        )
        return int(token_id), token

    def _resolve(self, token: str) -> Principal | None:
        row = self._db.conn.execute(
            "SELECT t.id, t.user_id, t.expires, t.revoked, t.last_used, u.username, u.role,"
            " u.owner_id, u.disabled FROM api_tokens t JOIN users u ON u.id = t.user_id"
            " WHERE t.token_hash = ?",
            (digest(token),),
        ).fetchone()
        now = self._clock()
        if (row is None or row["revoked"] is not None or row["disabled"]
                or (row["expires"] is not None and float(row["expires"]) <= now)):
            return None
        if row["last_used"] is None or now - float(row["last_used"]) >= TOUCH_EVERY:
            self._db.conn.execute(
                "UPDATE api_tokens SET last_used = ? WHERE id = ?", (now, row["id"])
            )
        return _principal(row, "token", token_id=int(row["id"]))

    def _of_user(self, user_id: int) -> list[TokenInfo]:
        rows = self._db.conn.execute(
            "SELECT * FROM api_tokens WHERE user_id = ? AND revoked IS NULL ORDER BY id",
            (user_id,),
        ).fetchall()
        return [
            TokenInfo(int(r["id"]), int(r["user_id"]), r["name"], r["kind"], float(r["created"]),
                      r["expires"], r["last_used"])
            for r in rows
        ]

    def _revoke(self, token_id: int, user_id: int | None) -> bool:
        if user_id is None:
            cursor = self._db.conn.execute(
                "UPDATE api_tokens SET revoked = ? WHERE id = ? AND revoked IS NULL",
                (self._clock(), token_id),
            )
        else:
            cursor = self._db.conn.execute(
                "UPDATE api_tokens SET revoked = ? WHERE id = ? AND user_id = ?"
                " AND revoked IS NULL",
                (self._clock(), token_id, user_id),
            )
        return cursor.rowcount > 0

    def _active_of_kind(self, kind: str) -> list[TokenInfo]:
        rows = self._db.conn.execute(
            "SELECT * FROM api_tokens WHERE kind = ? AND revoked IS NULL ORDER BY id", (kind,)
        ).fetchall()
        return [
            TokenInfo(int(r["id"]), int(r["user_id"]), r["name"], r["kind"], float(r["created"]),
                      r["expires"], r["last_used"])
            for r in rows
        ]
